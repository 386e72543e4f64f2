// SPDX-License-Identifier: MIT OR Apache-2.0
//! The shell's pure parts, host-tested with `cargo test -p user-sh --lib`: the command-line
//! parser ([`parse`]) and the line editor ([`LineEditor`]).
#![cfg_attr(not(test), no_std)]
#![forbid(unsafe_code)]

extern crate alloc;

use alloc::string::String;
use alloc::vec::Vec;

/// One command of a pipeline.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Command {
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
    if current.argv.is_empty() {
        return Err(ParseError::EmptyCommand);
    }
    pipeline.push(current);
    Ok(pipeline)
}

/// What the editor wants done after a byte.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Edit {
    /// Nothing to do yet.
    None,
    /// Write these bytes to the terminal (the echo).
    Echo(&'static [u8]),
    /// Echo the typed byte itself.
    EchoByte(u8),
    /// A complete line (without the newline); echo a newline.
    Line(String),
    /// Ctrl-C: the line was discarded; echo `^C` and a newline.
    Cancel,
    /// Ctrl-D on an empty line: end of input.
    Eof,
}

/// A line editor for a terminal that does not echo: the shell echoes what it accepts.
/// Backspace (0x08) and DEL (0x7f) erase one character (`"\b \b"`); CR, LF or CR LF end a
/// line; Ctrl-C discards the line; Ctrl-D on an empty line is end of input. Other control
/// bytes are ignored. Multi-byte UTF-8 characters are erased whole.
#[derive(Debug, Default)]
pub struct LineEditor {
    buf: Vec<u8>,
    after_cr: bool,
}

impl LineEditor {
    /// An empty editor.
    pub fn new() -> LineEditor {
        LineEditor::default()
    }

    /// Feeds one input byte.
    pub fn feed(&mut self, byte: u8) -> Edit {
        let after_cr = core::mem::replace(&mut self.after_cr, false);
        match byte {
            b'\n' if after_cr => Edit::None,
            b'\r' | b'\n' => {
                self.after_cr = byte == b'\r';
                let line = String::from_utf8_lossy(&self.buf).into_owned();
                self.buf.clear();
                Edit::Line(line)
            }
            0x08 | 0x7f => {
                if self.buf.is_empty() {
                    return Edit::None;
                }
                // Drop continuation bytes, then the lead byte of the last character.
                while self.buf.last().is_some_and(|b| b & 0xc0 == 0x80) {
                    self.buf.pop();
                }
                self.buf.pop();
                Edit::Echo(b"\x08 \x08")
            }
            0x03 => {
                self.buf.clear();
                Edit::Cancel
            }
            0x04 if self.buf.is_empty() => Edit::Eof,
            b if b < 0x20 && b != b'\t' => Edit::None,
            b => {
                self.buf.push(b);
                Edit::EchoByte(b)
            }
        }
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

    fn type_all(ed: &mut LineEditor, bytes: &[u8]) -> Vec<Edit> {
        bytes.iter().map(|&b| ed.feed(b)).collect()
    }

    #[test]
    fn editor_echoes_and_erases() {
        let mut ed = LineEditor::new();
        let edits = type_all(&mut ed, b"lx\x7fs\r");
        assert_eq!(
            edits,
            [
                Edit::EchoByte(b'l'),
                Edit::EchoByte(b'x'),
                Edit::Echo(b"\x08 \x08"),
                Edit::EchoByte(b's'),
                Edit::Line("ls".into())
            ]
        );
        // CR LF is one line end; backspace on an empty line does nothing.
        assert_eq!(ed.feed(b'\n'), Edit::None);
        assert_eq!(ed.feed(0x08), Edit::None);
        assert_eq!(ed.feed(b'\n'), Edit::Line(String::new()));
    }

    #[test]
    fn editor_erases_whole_utf8_characters() {
        let mut ed = LineEditor::new();
        type_all(&mut ed, "aé".as_bytes());
        assert_eq!(ed.feed(0x7f), Edit::Echo(b"\x08 \x08"));
        assert_eq!(ed.feed(b'\n'), Edit::Line("a".into()));
    }

    #[test]
    fn editor_control_keys() {
        let mut ed = LineEditor::new();
        type_all(&mut ed, b"abc");
        assert_eq!(ed.feed(0x03), Edit::Cancel);
        assert_eq!(ed.feed(b'\n'), Edit::Line(String::new()));
        type_all(&mut ed, b"x");
        assert_eq!(
            ed.feed(0x04),
            Edit::None,
            "Ctrl-D only ends input on an empty line"
        );
        assert_eq!(ed.feed(0x1b), Edit::None);
        ed.feed(0x7f);
        assert_eq!(ed.feed(0x04), Edit::Eof);
    }
}
