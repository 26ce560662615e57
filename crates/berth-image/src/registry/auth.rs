//! Registry authentication: credentials, `WWW-Authenticate` challenges, and the token flow of the
//! distribution spec (anonymous or basic-authenticated GET, or an OAuth2 refresh-token POST).

use std::fmt;

use base64::Engine;
use serde::Deserialize;

/// Credentials for one registry. Never printed: Debug shows only the kind.
#[derive(Clone, PartialEq, Eq)]
pub enum Credentials {
    Basic {
        username: String,
        password: String,
    },
    /// An OAuth2 refresh token, exchanged at the token endpoint.
    IdentityToken(String),
    /// A bearer token used as is.
    RegistryToken(String),
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Credentials::Basic { .. } => "Credentials::Basic(<redacted>)",
            Credentials::IdentityToken(_) => "Credentials::IdentityToken(<redacted>)",
            Credentials::RegistryToken(_) => "Credentials::RegistryToken(<redacted>)",
        })
    }
}

/// Credentials that cannot be sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum BadAuth {
    #[error("the `auth` credential is not base64 of user:password")]
    NotBase64,
    /// The token goes into the `Authorization` header as it is.
    #[error("the `registry_token` holds bytes an HTTP header cannot carry (only visible ASCII)")]
    TokenNotHeaderSafe,
}

impl Credentials {
    /// From the fields of a CRI AuthConfig or a registry's config table, in the order docker
    /// gives them weight: a registry token, an identity token, username and password, `auth`.
    pub fn from_parts(
        username: &str,
        password: &str,
        auth: &str,
        identity_token: &str,
        registry_token: &str,
    ) -> Result<Option<Credentials>, BadAuth> {
        if !registry_token.is_empty() {
            if !registry_token
                .bytes()
                .all(|b| b.is_ascii_graphic() || b == b' ')
            {
                return Err(BadAuth::TokenNotHeaderSafe);
            }
            return Ok(Some(Credentials::RegistryToken(registry_token.to_owned())));
        }
        if !identity_token.is_empty() {
            return Ok(Some(Credentials::IdentityToken(identity_token.to_owned())));
        }
        if !username.is_empty() {
            return Ok(Some(Credentials::Basic {
                username: username.to_owned(),
                password: password.to_owned(),
            }));
        }
        if !auth.is_empty() {
            let decoded = base64::engine::general_purpose::STANDARD
                .decode(auth.trim())
                .map_err(|_| BadAuth::NotBase64)?;
            let text = String::from_utf8(decoded).map_err(|_| BadAuth::NotBase64)?;
            let (username, password) = text.split_once(':').ok_or(BadAuth::NotBase64)?;
            return Ok(Some(Credentials::Basic {
                username: username.to_owned(),
                password: password.to_owned(),
            }));
        }
        Ok(None)
    }

    pub fn basic_header(&self) -> Option<String> {
        match self {
            Credentials::Basic { username, password } => Some(format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode(format!("{username}:{password}"))
            )),
            _ => None,
        }
    }
}

/// A parsed `WWW-Authenticate` header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Challenge {
    Basic,
    Bearer {
        realm: String,
        service: Option<String>,
        scope: Option<String>,
    },
}

impl Challenge {
    pub fn parse(header: &str) -> Option<Challenge> {
        let header = header.trim();
        let (scheme, params) = header.split_once(' ').unwrap_or((header, ""));
        let params = parse_params(params);
        let get = |k: &str| {
            params
                .iter()
                .find(|(key, _)| key.eq_ignore_ascii_case(k))
                .map(|(_, v)| v.clone())
        };
        if scheme.eq_ignore_ascii_case("basic") {
            Some(Challenge::Basic)
        } else if scheme.eq_ignore_ascii_case("bearer") {
            Some(Challenge::Bearer {
                realm: get("realm")?,
                service: get("service"),
                scope: get("scope"),
            })
        } else {
            None
        }
    }
}

/// `k="v", k2=v2` with quoted values that may hold commas and escaped quotes.
fn parse_params(text: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut chars = text.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| *c == ',' || c.is_whitespace()) {
            chars.next();
        }
        let key: String = chars.by_ref().take_while(|c| *c != '=').collect();
        if key.is_empty() {
            return out;
        }
        let mut value = String::new();
        if chars.peek() == Some(&'"') {
            chars.next();
            while let Some(c) = chars.next() {
                match c {
                    '\\' => value.extend(chars.next()),
                    '"' => break,
                    c => value.push(c),
                }
            }
        } else {
            while let Some(c) = chars.peek() {
                if *c == ',' {
                    break;
                }
                value.push(*c);
                chars.next();
            }
        }
        out.push((key.trim().to_owned(), value.trim().to_owned()));
    }
}

/// A token endpoint's answer: docker's `token` or OAuth2's `access_token`.
#[derive(Debug, Deserialize)]
pub struct TokenResponse {
    #[serde(default)]
    token: Option<String>,
    #[serde(default)]
    access_token: Option<String>,
}

impl TokenResponse {
    pub fn into_token(self) -> Option<String> {
        self.token
            .filter(|t| !t.is_empty())
            .or(self.access_token.filter(|t| !t.is_empty()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_challenges_parse_with_quoted_commas() {
        let c = Challenge::parse(
            r#"Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/busybox:pull,push""#,
        )
        .unwrap();
        assert_eq!(
            c,
            Challenge::Bearer {
                realm: "https://auth.docker.io/token".into(),
                service: Some("registry.docker.io".into()),
                scope: Some("repository:library/busybox:pull,push".into()),
            }
        );
        assert_eq!(
            Challenge::parse(r#"Basic realm="Registry Realm""#),
            Some(Challenge::Basic)
        );
        assert_eq!(Challenge::parse("Negotiate"), None);
    }

    #[test]
    fn credentials_from_cri_fields_and_never_printed() {
        let auth = base64::engine::general_purpose::STANDARD.encode("alice:s3cret");
        let c = Credentials::from_parts("", "", &auth, "", "")
            .unwrap()
            .unwrap();
        assert_eq!(
            c,
            Credentials::Basic {
                username: "alice".into(),
                password: "s3cret".into()
            }
        );
        assert!(!format!("{c:?}").contains("s3cret"));
        assert!(Credentials::from_parts("", "", "!!", "", "").is_err());
        assert_eq!(
            Credentials::from_parts("u", "p", "", "", "tok").unwrap(),
            Some(Credentials::RegistryToken("tok".into()))
        );
        assert_eq!(Credentials::from_parts("", "", "", "", "").unwrap(), None);
    }
}
