//! The process's arguments and environment from the CRI config and the image config, by Docker's
//! rules (as kubelet documents them): the CRI `command` replaces the image's Entrypoint and then
//! the image's Cmd is dropped; the CRI `args` replace the image's Cmd.

use berth_image::manifest::ContainerDefaults;

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("no command: neither the container config nor the image gives one")]
pub struct NoCommand;

pub fn process_args(
    command: &[String],
    args: &[String],
    image: &ContainerDefaults,
) -> Result<Vec<String>, NoCommand> {
    let image_entrypoint = image.entrypoint.clone().unwrap_or_default();
    let image_cmd = image.cmd.clone().unwrap_or_default();
    let (entrypoint, cmd) = if !command.is_empty() {
        (command.to_vec(), args.to_vec())
    } else if !args.is_empty() {
        (image_entrypoint, args.to_vec())
    } else {
        (image_entrypoint, image_cmd)
    };
    let all: Vec<String> = entrypoint.into_iter().chain(cmd).collect();
    if all.is_empty() {
        return Err(NoCommand);
    }
    Ok(all)
}

/// A process's environment: what the OCI spec can hold, and the entries whose values are not
/// UTF-8, which it cannot.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Environment {
    /// `KEY=VALUE` strings, for the spec.
    pub text: Vec<String>,
    /// `KEY=VALUE\0` entries with values that are not UTF-8 (for berth-env-exec).
    pub bytes: Vec<u8>,
}

/// The image's environment, then the config's (a key set by both takes the config's value, in the
/// image's place); PATH gets the usual default when neither sets it.
pub fn environment(
    image: &ContainerDefaults,
    config: &[(String, Vec<u8>)],
    hostname: &str,
) -> Environment {
    let mut env: Vec<(String, Vec<u8>)> = Vec::new();
    let mut set = |key: &str, value: &[u8]| match env.iter_mut().find(|(k, _)| k == key) {
        Some(entry) => entry.1 = value.to_owned(),
        None => env.push((key.to_owned(), value.to_owned())),
    };
    if !hostname.is_empty() {
        set("HOSTNAME", hostname.as_bytes());
    }
    for entry in image.env.iter().flatten() {
        let (k, v) = entry.split_once('=').unwrap_or((entry, ""));
        set(k, v.as_bytes());
    }
    for (k, v) in config {
        set(k, v);
    }
    if !env.iter().any(|(k, _)| k == "PATH") {
        env.insert(
            0,
            (
                "PATH".into(),
                b"/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".to_vec(),
            ),
        );
    }
    let mut out = Environment::default();
    for (k, v) in env {
        match String::from_utf8(v) {
            Ok(text) => out.text.push(format!("{k}={text}")),
            Err(not_text) => {
                out.bytes.extend_from_slice(k.as_bytes());
                out.bytes.push(b'=');
                out.bytes.extend_from_slice(not_text.as_bytes());
                out.bytes.push(0);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn image(entrypoint: &[&str], cmd: &[&str]) -> ContainerDefaults {
        let v = |s: &[&str]| (!s.is_empty()).then(|| s.iter().map(|x| x.to_string()).collect());
        ContainerDefaults {
            entrypoint: v(entrypoint),
            cmd: v(cmd),
            ..ContainerDefaults::default()
        }
    }

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|x| x.to_string()).collect()
    }

    #[test]
    fn the_docker_rules() {
        let img = image(&["/entry"], &["default"]);
        assert_eq!(
            process_args(&[], &[], &img).unwrap(),
            s(&["/entry", "default"])
        );
        assert_eq!(
            process_args(&[], &s(&["a"]), &img).unwrap(),
            s(&["/entry", "a"])
        );
        assert_eq!(process_args(&s(&["sh"]), &[], &img).unwrap(), s(&["sh"]));
        assert_eq!(
            process_args(&s(&["sh"]), &s(&["-c", "x"]), &img).unwrap(),
            s(&["sh", "-c", "x"])
        );
        assert_eq!(
            process_args(&[], &[], &image(&[], &["sh"])).unwrap(),
            s(&["sh"])
        );
        assert!(process_args(&[], &[], &image(&[], &[])).is_err());
    }

    #[test]
    fn config_env_overrides_image_env_in_place() {
        let img = ContainerDefaults {
            env: Some(s(&["PATH=/bin", "A=1", "B=2"])),
            ..ContainerDefaults::default()
        };
        let env = environment(
            &img,
            &[
                ("A".into(), b"x".to_vec()),
                ("C".into(), b"3".to_vec()),
                ("RAW".into(), b"f\xffo".to_vec()),
            ],
            "web",
        );
        assert_eq!(
            env.text,
            s(&["HOSTNAME=web", "PATH=/bin", "A=x", "B=2", "C=3"])
        );
        assert_eq!(env.bytes, b"RAW=f\xffo\0");
        let bare = environment(&ContainerDefaults::default(), &[], "");
        assert!(bare.text[0].starts_with("PATH=/usr/local/sbin"));
        assert!(bare.bytes.is_empty());
    }
}
