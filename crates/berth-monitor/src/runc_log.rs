//! The last error runc wrote to its JSON log (`--log FILE --log-format json`): how the monitor
//! reads why `runc create` failed, and berth-exec why `runc exec` did.

/// The last error runc logged, in its JSON log.
pub fn runc_error_in(log: &str) -> Option<String> {
    let log = std::fs::read_to_string(log).ok()?;
    log.lines()
        .rev()
        .filter(|l| l.contains("\"level\":\"error\"") || l.contains("\"level\":\"fatal\""))
        .find_map(|l| json_string_field(l, "msg"))
}

/// The string value of `"key":"…"` in one JSON object line (runc's log lines are flat).
fn json_string_field(line: &str, key: &str) -> Option<String> {
    let start = line.find(&format!("\"{key}\":\""))? + key.len() + 4;
    let mut out = String::new();
    let mut chars = line[start..].chars();
    while let Some(c) = chars.next() {
        match c {
            '"' => return Some(out),
            '\\' => match chars.next()? {
                'n' => out.push('\n'),
                't' => out.push('\t'),
                'u' => {
                    let hex: String = chars.by_ref().take(4).collect();
                    out.push(
                        u32::from_str_radix(&hex, 16)
                            .ok()
                            .and_then(char::from_u32)
                            .unwrap_or('?'),
                    );
                }
                other => out.push(other),
            },
            c => out.push(c),
        }
    }
    None
}

#[cfg(test)]
mod tests {
    #[test]
    fn runc_log_messages_are_unescaped() {
        let line = r#"{"level":"error","msg":"exec: \"nope\": executable file not found in $PATH\u0021","time":"x"}"#;
        assert_eq!(
            super::json_string_field(line, "msg").unwrap(),
            "exec: \"nope\": executable file not found in $PATH!"
        );
    }
}
