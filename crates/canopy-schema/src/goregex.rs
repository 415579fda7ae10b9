//! Go (RE2) regular expressions on top of the `regex` crate.
//!
//! CRD `pattern`s are compiled by kube-apiserver with Go's `regexp`. The
//! `regex` crate implements nearly the same syntax, but its Perl classes
//! (`\d`, `\w`, `\s`, `\b`) are Unicode-aware while Go's are ASCII-only.
//! [`compile`] rewrites those classes to their ASCII meaning so that a
//! pattern such as `^\d+$` rejects `"٣"` exactly like kube does.

use regex::Regex;

/// Compiles a Go regular expression. Matching is unanchored, like Go's
/// `MatchString`.
pub fn compile(pattern: &str) -> Result<Regex, String> {
    let translated = translate(pattern);
    regex::RegexBuilder::new(&translated)
        .size_limit(64 << 20)
        .build()
        .map_err(|e| e.to_string())
}

fn translate(p: &str) -> String {
    let mut out = String::with_capacity(p.len() + 16);
    let mut chars = p.chars().peekable();
    // Depth of character classes: Go has no nested classes, but `[[:alpha:]]`
    // style classes appear inside a class.
    let mut in_class = false;
    let mut class_start = false;
    while let Some(c) = chars.next() {
        if c == '\\' {
            let Some(n) = chars.next() else {
                out.push('\\');
                break;
            };
            let rep: Option<(&str, &str)> = match n {
                'd' => Some(("[0-9]", "0-9")),
                'D' => Some(("[^0-9]", "[^0-9]")),
                'w' => Some(("[0-9A-Za-z_]", "0-9A-Za-z_")),
                'W' => Some(("[^0-9A-Za-z_]", "[^0-9A-Za-z_]")),
                's' => Some(("[\\t\\n\\f\\r ]", "\\t\\n\\f\\r ")),
                'S' => Some(("[^\\t\\n\\f\\r ]", "[^\\t\\n\\f\\r ]")),
                'b' if !in_class => Some(("(?-u:\\b)", "")),
                'B' if !in_class => Some(("(?-u:\\B)", "")),
                _ => None,
            };
            match rep {
                Some((outside, inside)) => out.push_str(if in_class { inside } else { outside }),
                None => {
                    out.push('\\');
                    out.push(n);
                }
            }
            class_start = false;
            continue;
        }
        if in_class {
            if c == '[' && chars.peek() == Some(&':') {
                // POSIX class [:alpha:] — copy through to the closing ":]".
                out.push('[');
                for d in chars.by_ref() {
                    out.push(d);
                    if d == ']' {
                        break;
                    }
                }
                class_start = false;
                continue;
            }
            if c == '[' {
                // A literal '[' inside a class in Go; the regex crate would
                // read it as a nested class.
                out.push_str("\\[");
                class_start = false;
                continue;
            }
            if c == ']' && !class_start {
                in_class = false;
            }
            if c == '^' && class_start {
                out.push(c);
                continue;
            }
            if (c == '&' || c == '~' || c == '-') && chars.peek() == Some(&c) {
                // `&&`, `~~`, `--` are set operators in the regex crate.
                out.push('\\');
                out.push(c);
                class_start = false;
                continue;
            }
            out.push(c);
            class_start = false;
            continue;
        }
        if c == '[' {
            in_class = true;
            class_start = true;
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ascii_classes() {
        let re = compile(r"^\d+$").unwrap();
        assert!(re.is_match("123"));
        assert!(!re.is_match("١٢٣"));
        let re = compile(r"^[\w-]+$").unwrap();
        assert!(re.is_match("a_b-c"));
        assert!(!re.is_match("é"));
        let re = compile(r"^[^\s]+$").unwrap();
        assert!(re.is_match("ab"));
        assert!(!re.is_match("a b"));
    }

    #[test]
    fn literal_bracket_in_class() {
        let re = compile(r"^[a[]+$").unwrap();
        assert!(re.is_match("a[a"));
        let re = compile(r"^[]a]+$").unwrap();
        assert!(re.is_match("]a"));
        let re = compile(r"^[[:alpha:]]+$").unwrap();
        assert!(re.is_match("abc"));
    }

    #[test]
    fn quantity_pattern() {
        let re = compile(r"^(\+|-)?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))(([KMGTPE]i)|[numkMGTPE]|([eE](\+|-)?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))))?$").unwrap();
        assert!(re.is_match("100Mi"));
        assert!(!re.is_match("100 Mi"));
    }

    #[test]
    fn invalid() {
        assert!(compile("(").is_err());
    }
}
