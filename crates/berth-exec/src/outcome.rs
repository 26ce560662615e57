//! The result file: one line the helper writes atomically once the exec is over, and berthd reads
//! after the helper has exited. `exit <code>` (a signal's death is 128 + its number, as a shell
//! reports it), or `error <message>` when the process never ran.

use std::io;
use std::path::Path;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Exited(i32),
    /// The process never ran: the runtime's or the helper's words.
    Failed(String),
}

impl Outcome {
    /// Writes the line to `path` through a temporary file beside it, so a reader sees all or
    /// nothing.
    pub fn write(&self, path: &Path) -> io::Result<()> {
        let line = match self {
            Outcome::Exited(code) => format!("exit {code}\n"),
            Outcome::Failed(message) => format!("error {}\n", message.replace('\n', " ")),
        };
        let mut temp = path.as_os_str().to_owned();
        temp.push(".tmp");
        std::fs::write(&temp, line)?;
        std::fs::rename(&temp, path)
    }

    /// The outcome a result file holds; None when its line is not one.
    pub fn parse(text: &str) -> Option<Outcome> {
        match text.trim().split_once(' ') {
            Some(("exit", code)) => code.parse().ok().map(Outcome::Exited),
            Some(("error", message)) => Some(Outcome::Failed(message.to_owned())),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::Outcome;

    #[test]
    fn outcomes_survive_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("result");
        for outcome in [
            Outcome::Exited(0),
            Outcome::Exited(137),
            Outcome::Failed("exec: \"nope\": executable file not found in $PATH".into()),
        ] {
            outcome.write(&path).unwrap();
            let text = std::fs::read_to_string(&path).unwrap();
            assert_eq!(Outcome::parse(&text), Some(outcome));
        }
        Outcome::Failed("two\nlines".into()).write(&path).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(text.lines().count(), 1);
        assert_eq!(Outcome::parse("exit x"), None);
        assert_eq!(Outcome::parse("garbage"), None);
    }
}
