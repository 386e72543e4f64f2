// SPDX-License-Identifier: MIT OR Apache-2.0
//! The shell's pure parts, host-tested with `cargo test -p user-sh --lib`: the command-line
//! parser ([`parse`]) and the input line splitter ([`LineBuffer`]). Line editing is the
//! console's (its line discipline echoes, erases, and turns ^C and ^D into events).
#![cfg_attr(not(test), no_std)]
#![forbid(unsafe_code)]

extern crate alloc;

use alloc::string::String;
use alloc::vec::Vec;

/// One command of a pipeline.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Command {
    /// `NAME=value` words before the program: added to its environment only. A line of
    /// nothing but assignments sets them in the shell's own environment, which every
    /// later command inherits.
    pub env: Vec<String>,
    /// The program and its arguments, quotes removed and `$?` expanded.
    pub argv: Vec<String>,
    /// `< file`.
    pub stdin: Option<String>,
    /// `> file` (`append == false`) or `>> file` (`append == true`).
    pub stdout: Option<Redirect>,
}

/// An output redirection.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Redirect {
    /// The file.
    pub path: String,
    /// `>>`: append instead of truncating.
    pub append: bool,
}

/// Why a line could not be parsed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ParseError {
    /// A `'` or `"` without its closing partner.
    UnterminatedQuote,
    /// `<`, `>` or `>>` without a file name after it.
    MissingRedirectTarget,
    /// `|` with no command on one side.
    EmptyCommand,
}

impl core::fmt::Display for ParseError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(match self {
            ParseError::UnterminatedQuote => "unterminated quote",
            ParseError::MissingRedirectTarget => "missing file name after redirection",
            ParseError::EmptyCommand => "empty command in pipeline",
        })
    }
}

#[derive(Debug, PartialEq, Eq)]
enum Token {
    Word(String),
    Pipe,
    In,
    Out,
    Append,
}

fn tokenize(line: &str, last_status: i32) -> Result<Vec<Token>, ParseError> {
    let mut tokens = Vec::new();
    let mut chars = line.chars().peekable();
    let status = alloc::format!("{last_status}");
    loop {
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
        let Some(&c) = chars.peek() else { break };
        match c {
            '#' => break,
            '|' => {
                chars.next();
                tokens.push(Token::Pipe);
            }
            '<' => {
                chars.next();
                tokens.push(Token::In);
            }
            '>' => {
                chars.next();
                if chars.next_if_eq(&'>').is_some() {
                    tokens.push(Token::Append);
                } else {
                    tokens.push(Token::Out);
                }
            }
            _ => {
                let mut word = String::new();
                while let Some(&c) = chars.peek() {
                    match c {
                        c if c.is_whitespace() => break,
                        '|' | '<' | '>' => break,
                        '\'' => {
                            chars.next();
                            loop {
                                match chars.next() {
                                    Some('\'') => break,
                                    Some(c) => word.push(c),
                                    None => return Err(ParseError::UnterminatedQuote),
                                }
                            }
                        }
                        '"' => {
                            chars.next();
                            loop {
                                match chars.next() {
                                    Some('"') => break,
                                    Some('\\') => match chars.next() {
                                        Some(c @ ('"' | '\\' | '$')) => word.push(c),
                                        Some(c) => {
                                            word.push('\\');
                                            word.push(c);
                                        }
                                        None => return Err(ParseError::UnterminatedQuote),
                                    },
                                    Some('$') if chars.next_if_eq(&'?').is_some() => {
                                        word.push_str(&status);
                                    }
                                    Some(c) => word.push(c),
                                    None => return Err(ParseError::UnterminatedQuote),
                                }
                            }
                        }
                        '\\' => {
                            chars.next();
                            if let Some(c) = chars.next() {
                                word.push(c);
                            }
                        }
                        '$' => {
                            chars.next();
                            if chars.next_if_eq(&'?').is_some() {
                                word.push_str(&status);
                            } else {
                                word.push('$');
                            }
                        }
                        c => {
                            chars.next();
                            word.push(c);
                        }
                    }
                }
                tokens.push(Token::Word(word));
            }
        }
    }
    Ok(tokens)
}

/// Parses one line into a pipeline; `$?` becomes `last_status`. An empty line (or one that
/// is only a `#` comment) is an empty pipeline.
///
/// # Errors
/// [`ParseError`] for unbalanced quotes, a redirection without a file, or an empty stage.
pub fn parse(line: &str, last_status: i32) -> Result<Vec<Command>, ParseError> {
    let tokens = tokenize(line, last_status)?;
    if tokens.is_empty() {
        return Ok(Vec::new());
    }
    let mut pipeline = Vec::new();
    let mut current = Command::default();
    let mut iter = tokens.into_iter();
    while let Some(token) = iter.next() {
        match token {
            Token::Word(w) if current.argv.is_empty() && is_assignment(&w) => current.env.push(w),
            Token::Word(w) => current.argv.push(w),
            Token::Pipe => {
                if current.argv.is_empty() {
                    return Err(ParseError::EmptyCommand);
                }
                pipeline.push(core::mem::take(&mut current));
            }
            redirect => {
                let Some(Token::Word(path)) = iter.next() else {
                    return Err(ParseError::MissingRedirectTarget);
                };
                match redirect {
                    Token::In => current.stdin = Some(path),
                    Token::Out => {
                        current.stdout = Some(Redirect {
                            path,
                            append: false,
                        })
                    }
                    _ => current.stdout = Some(Redirect { path, append: true }),
                }
            }
        }
    }
    // Assignments alone are a command of their own, but not a stage of a pipe.
    let assignments_only = pipeline.is_empty() && !current.env.is_empty();
    if current.argv.is_empty() && !assignments_only {
        return Err(ParseError::EmptyCommand);
    }
    pipeline.push(current);
    Ok(pipeline)
}

/// `NAME=value` with a name of letters, digits and `_` that does not start with a digit.
fn is_assignment(word: &str) -> bool {
    let Some((name, _)) = word.split_once('=') else {
        return false;
    };
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// The `NAME` of a `NAME=value` entry (all of it without a `=`).
pub fn var_name(entry: &str) -> &str {
    entry.split_once('=').map_or(entry, |(name, _)| name)
}

/// Sets `NAME=value` in `env`, replacing an earlier value of `NAME`.
pub fn set_var(env: &mut Vec<String>, assignment: &str) {
    let name = var_name(assignment);
    env.retain(|e| var_name(e) != name);
    env.push(String::from(assignment));
}

/// Splits input into lines. The console delivers whole lines (its line discipline
/// edits and echoes), but a pipe or a file delivers any number of lines per read, and
/// a line may span reads; this keeps the rest for the next line.
#[derive(Debug, Default)]
pub struct LineBuffer {
    pending: Vec<u8>,
}

impl LineBuffer {
    /// An empty buffer.
    pub fn new() -> LineBuffer {
        LineBuffer::default()
    }

    /// Appends what a read returned.
    pub fn push(&mut self, bytes: &[u8]) {
        self.pending.extend_from_slice(bytes);
    }

    /// The next complete line, without its `\n` (nor a `\r` before it).
    pub fn next_line(&mut self) -> Option<String> {
        let end = self.pending.iter().position(|&b| b == b'\n')?;
        let mut line: Vec<u8> = self.pending.drain(..=end).collect();
        line.pop();
        if line.last() == Some(&b'\r') {
            line.pop();
        }
        Some(String::from_utf8_lossy(&line).into_owned())
    }

    /// At end of input: the unterminated last line, if any.
    pub fn take_rest(&mut self) -> Option<String> {
        (!self.pending.is_empty()).then(|| {
            let line = String::from_utf8_lossy(&self.pending).into_owned();
            self.pending.clear();
            line
        })
    }

    /// Drops a partly read line (after ^C).
    pub fn clear(&mut self) {
        self.pending.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(line: &str) -> Vec<Vec<String>> {
        parse(line, 0)
            .unwrap()
            .into_iter()
            .map(|c| c.argv)
            .collect()
    }

    #[test]
    fn splits_words_and_pipelines() {
        assert_eq!(words("ls -l /bin"), [["ls", "-l", "/bin"]]);
        assert_eq!(
            words("  cat a|grep b | wc  "),
            vec![vec!["cat", "a"], vec!["grep", "b"], vec!["wc"]]
        );
        assert!(parse("", 0).unwrap().is_empty());
        assert!(parse("   # just a comment", 0).unwrap().is_empty());
        assert_eq!(words("echo hi # there"), [["echo", "hi"]]);
    }

    #[test]
    fn quotes_and_escapes() {
        assert_eq!(words("echo 'a  b' \"c d\""), [["echo", "a  b", "c d"]]);
        assert_eq!(words("echo 'a|b' \"x>y\""), [["echo", "a|b", "x>y"]]);
        assert_eq!(words("echo ab'cd'\"ef\""), [["echo", "abcdef"]]);
        assert_eq!(words("echo '' x"), [["echo", "", "x"]]);
        assert_eq!(
            words(r#"echo "a \"q\" \n" a\ b"#),
            [["echo", "a \"q\" \\n", "a b"]]
        );
        assert_eq!(parse("echo 'oops", 0), Err(ParseError::UnterminatedQuote));
        assert_eq!(parse("echo \"oops", 0), Err(ParseError::UnterminatedQuote));
    }

    #[test]
    fn assignments() {
        let p = parse("BENCH_SAMPLES=31 _x1='a b' bench =no A-B=c x=1", 0).unwrap();
        assert_eq!(p[0].env, ["BENCH_SAMPLES=31", "_x1=a b"]);
        assert_eq!(p[0].argv, ["bench", "=no", "A-B=c", "x=1"]);
        // Not names: left as the program.
        assert_eq!(words("1X=2 echo"), [["1X=2", "echo"]]);
        assert_eq!(words("=2 echo"), [["=2", "echo"]]);
        // A line of assignments alone is a command; in a pipe it is an empty stage.
        let p = parse("A=1 B=2", 0).unwrap();
        assert_eq!((p[0].env.len(), p[0].argv.len()), (2, 0));
        assert_eq!(parse("A=1 | cat", 0), Err(ParseError::EmptyCommand));
        assert_eq!(parse("cat | A=1", 0), Err(ParseError::EmptyCommand));
        let mut env = vec![String::from("A=1"), String::from("AB=2")];
        set_var(&mut env, "A=3");
        set_var(&mut env, "C=");
        assert_eq!(env, ["AB=2", "A=3", "C="]);
    }

    #[test]
    fn status_expansion() {
        let p = parse("echo $? \"[$?]\" '$?' $x", 127).unwrap();
        assert_eq!(p[0].argv, ["echo", "127", "[127]", "$?", "$x"]);
    }

    #[test]
    fn redirections() {
        let p = parse("sort < in.txt > out.txt", 0).unwrap();
        assert_eq!(p[0].argv, ["sort"]);
        assert_eq!(p[0].stdin.as_deref(), Some("in.txt"));
        assert_eq!(
            p[0].stdout,
            Some(Redirect {
                path: "out.txt".into(),
                append: false
            })
        );
        let p = parse("echo hi >>log", 0).unwrap();
        assert_eq!(
            p[0].stdout,
            Some(Redirect {
                path: "log".into(),
                append: true
            })
        );
        let p = parse("cat <a | wc >b", 0).unwrap();
        assert_eq!(p[0].stdin.as_deref(), Some("a"));
        assert_eq!(p[1].stdout.as_ref().unwrap().path, "b");
        assert_eq!(parse("echo >", 0), Err(ParseError::MissingRedirectTarget));
        assert_eq!(
            parse("echo > | x", 0),
            Err(ParseError::MissingRedirectTarget)
        );
    }

    #[test]
    fn empty_pipeline_stages_are_errors() {
        assert_eq!(parse("| ls", 0), Err(ParseError::EmptyCommand));
        assert_eq!(parse("ls |", 0), Err(ParseError::EmptyCommand));
        assert_eq!(parse("ls || x", 0), Err(ParseError::EmptyCommand));
        assert_eq!(parse("> f", 0), Err(ParseError::EmptyCommand));
    }

    #[test]
    fn line_buffer_splits_reads_into_lines() {
        let mut lb = LineBuffer::new();
        lb.push(b"ls\necho a");
        assert_eq!(lb.next_line().as_deref(), Some("ls"));
        assert_eq!(
            lb.next_line(),
            None,
            "a line spanning reads waits for its end"
        );
        lb.push(b" b\r\n\n");
        assert_eq!(lb.next_line().as_deref(), Some("echo a b"));
        assert_eq!(lb.next_line().as_deref(), Some(""));
        assert_eq!(lb.next_line(), None);
        lb.push(b"tail");
        assert_eq!(lb.take_rest().as_deref(), Some("tail"));
        assert_eq!(lb.take_rest(), None);
        lb.push(b"half");
        lb.clear();
        lb.push(b"x\n");
        assert_eq!(lb.next_line().as_deref(), Some("x"));
    }
}
