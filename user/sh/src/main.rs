// SPDX-License-Identifier: MIT OR Apache-2.0
//! `sh`: Damselfly's shell.
//!
//! `sh` reads commands from fd 0 with prompt `$ `; `sh FILE` runs the lines of FILE;
//! `sh -c LINE` runs one line. Builtins: `cd`, `exit`, `echo`, `pwd`. Other commands run
//! from `/bin` (or the path given, when it contains `/`). Pipes, `<`, `>`, `>>`, `$?`,
//! '' and "" quoting (parser in `lib.rs`).
//!
//! The console does the line editing (its line discipline echoes, erases, delivers whole
//! lines), so the shell only reads lines. When fd 0 is a character device (the console)
//! it prints the prompt, runs commands in the console's foreground (`SPAWN_FOREGROUND`:
//! ^C terminates them and `$?` becomes 130), starts a fresh prompt when ^C interrupts
//! its own read (`$?` 130 too), and exits on end of file (^D on an empty line), printing
//! a newline. When fd 0 is a file or a pipe it prints no prompt.
#![no_std]
#![no_main]

extern crate alloc;

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

use libc_shim::abi::ring::SPAWN_FOREGROUND;
use libc_shim::abi::{Errno, FileType, OpenFlags};
use libc_shim::{Args, eprintln, sys};
use shell::{Command, LineBuffer, parse};

libc_shim::entry!(main);

struct Shell {
    env: Vec<String>,
    status: i32,
    exit: Option<i32>,
    /// Interactive on the console: commands run in its foreground (^C ends them).
    is_terminal: bool,
}

fn main(args: Args) -> i32 {
    let env: Vec<String> = args
        .env()
        .filter_map(|e| core::str::from_utf8(e).ok())
        .map(String::from)
        .collect();
    let mut sh = Shell {
        env,
        status: 0,
        exit: None,
        is_terminal: false,
    };
    match (args.get(1), args.get(2)) {
        (Some("-c"), Some(line)) => {
            sh.run_line(line);
            sh.exit.unwrap_or(sh.status)
        }
        (Some(path), _) => match libc_shim::dir::read_file(path) {
            Ok(bytes) => {
                for line in String::from_utf8_lossy(&bytes).lines() {
                    sh.run_line(line);
                    if sh.exit.is_some() {
                        break;
                    }
                }
                sh.exit.unwrap_or(sh.status)
            }
            Err(e) => {
                eprintln!("sh: {path}: {e}");
                127
            }
        },
        (None, _) => sh.interactive(),
    }
}

impl Shell {
    fn interactive(&mut self) -> i32 {
        self.is_terminal = sys::fstat(0)
            .is_ok_and(|st| FileType::from_mode(st.st_mode) == Some(FileType::CharDevice));
        let mut input = LineBuffer::new();
        let mut buf = [0u8; 4096];
        loop {
            if self.is_terminal {
                let _ = sys::write_all(1, b"$ ");
            }
            let line = loop {
                if let Some(line) = input.next_line() {
                    break line;
                }
                match sys::read(0, &mut buf) {
                    Ok(0) => match input.take_rest() {
                        // The last line of a file or pipe without a newline.
                        Some(line) => break line,
                        // End of input (^D on an empty line at a terminal): exit.
                        None => {
                            if self.is_terminal {
                                let _ = sys::write_all(1, b"\n");
                            }
                            return self.exit.unwrap_or(self.status);
                        }
                    },
                    Ok(n) => input.push(&buf[..n]),
                    // ^C at the prompt: the console dropped the line; start a fresh one.
                    Err(Errno::Intr) if self.is_terminal => {
                        input.clear();
                        self.status = 130;
                        let _ = sys::write_all(1, b"$ ");
                    }
                    Err(Errno::Intr) => {}
                    Err(e) => {
                        eprintln!("sh: read: {e}");
                        return 1;
                    }
                }
            };
            self.run_line(&line);
            if let Some(code) = self.exit {
                return code;
            }
        }
    }

    fn run_line(&mut self, line: &str) {
        match parse(line, self.status) {
            Ok(pipeline) if pipeline.is_empty() => {}
            Ok(pipeline) => self.status = self.run_pipeline(&pipeline),
            Err(e) => {
                eprintln!("sh: {e}");
                self.status = 2;
            }
        }
    }

    /// Runs the pipeline and returns the status of its last command.
    fn run_pipeline(&mut self, pipeline: &[Command]) -> i32 {
        // `NAME=value ...` alone: the shell's own environment, inherited from now on.
        if let [cmd] = pipeline
            && cmd.argv.is_empty()
        {
            for assignment in &cmd.env {
                shell::set_var(&mut self.env, assignment);
            }
            return 0;
        }
        let mut children: Vec<i32> = Vec::new();
        let mut last_status = 0;
        let mut last_pid = None;
        let mut input: i32 = 0; // read end from the previous stage (0 = our stdin)
        for (i, cmd) in pipeline.iter().enumerate() {
            let is_last = i + 1 == pipeline.len();
            let (next_input, pipe_write) = if is_last {
                (None, None)
            } else {
                match sys::pipe() {
                    Ok((r, w)) => (Some(r), Some(w)),
                    Err(e) => {
                        eprintln!("sh: pipe: {e}");
                        last_status = 1;
                        break;
                    }
                }
            };
            let mut stage_input = input;
            let mut output = pipe_write.unwrap_or(1);
            let mut opened = Vec::new();
            let mut ok = true;
            if let Some(path) = &cmd.stdin {
                match sys::open(path, OpenFlags::READ_ONLY, 0) {
                    Ok(fd) => {
                        stage_input = fd;
                        opened.push(fd);
                    }
                    Err(e) => {
                        eprintln!("sh: {path}: {e}");
                        ok = false;
                    }
                }
            }
            if let Some(r) = &cmd.stdout {
                let mode = if r.append {
                    OpenFlags::APPEND
                } else {
                    OpenFlags::TRUNCATE
                };
                let flags = OpenFlags::WRITE_ONLY.union(OpenFlags::CREATE).union(mode);
                match sys::open(&r.path, flags, 0o644) {
                    Ok(fd) => {
                        output = fd;
                        opened.push(fd);
                    }
                    Err(e) => {
                        eprintln!("sh: {}: {e}", r.path);
                        ok = false;
                    }
                }
            }
            if ok {
                match self.builtin(cmd, output) {
                    Some(status) => last_status = status,
                    None => match self.spawn(cmd, stage_input, output) {
                        Ok(pid) => {
                            children.push(pid);
                            if is_last {
                                last_pid = Some(pid);
                            }
                        }
                        Err(status) => last_status = status,
                    },
                }
            } else {
                last_status = 1;
            }
            // The children hold what they need; drop our copies so pipes see EOF.
            for fd in opened.into_iter().chain(pipe_write) {
                let _ = sys::close(fd);
            }
            if input != 0 {
                let _ = sys::close(input);
            }
            input = next_input.unwrap_or(0);
        }
        if input != 0 {
            let _ = sys::close(input);
        }
        // Wait for the stages; the status is the last one's.
        for pid in children {
            match sys::waitpid(pid) {
                Ok((p, st)) if Some(p) == last_pid => last_status = st.code(),
                Ok(_) => {}
                Err(e) => eprintln!("sh: wait {pid}: {e}"),
            }
        }
        last_status
    }

    fn spawn(&self, cmd: &Command, input: i32, output: i32) -> Result<i32, i32> {
        let name = cmd.argv[0].as_str();
        let path = sys::command_path(name);
        let argv: Vec<&str> = cmd.argv.iter().map(String::as_str).collect();
        let flags = if self.is_terminal {
            SPAWN_FOREGROUND
        } else {
            0
        };
        let fds = [(0, input), (1, output), (2, 2)];
        // The command's own assignments override the shell's.
        let overridden = |e: &&String| {
            cmd.env
                .iter()
                .any(|a| shell::var_name(a) == shell::var_name(e))
        };
        let env: Vec<&str> = self
            .env
            .iter()
            .filter(|e| !overridden(e))
            .chain(&cmd.env)
            .map(String::as_str)
            .collect();
        match sys::spawn_with_flags(&path, &argv, &env, &fds, flags) {
            Ok(pid) => Ok(pid),
            Err(Errno::NoEnt) => {
                eprintln!("sh: {name}: command not found");
                Err(127)
            }
            Err(e) => {
                eprintln!("sh: {name}: {e}");
                Err(126)
            }
        }
    }

    /// Runs a builtin; `None` if `cmd` is not one.
    fn builtin(&mut self, cmd: &Command, output: i32) -> Option<i32> {
        let args: Vec<&str> = cmd.argv.iter().map(String::as_str).collect();
        Some(match args[0] {
            "cd" => {
                let dir = args.get(1).copied().unwrap_or("/");
                match sys::chdir(dir) {
                    Ok(()) => 0,
                    Err(e) => {
                        eprintln!("cd: {dir}: {e}");
                        1
                    }
                }
            }
            "pwd" => {
                let mut buf = [0u8; 4096];
                match sys::getcwd(&mut buf) {
                    Ok(path) => {
                        let line = format!("{path}\n");
                        i32::from(sys::write_all(output, line.as_bytes()).is_err())
                    }
                    Err(e) => {
                        eprintln!("pwd: {e}");
                        1
                    }
                }
            }
            "echo" => {
                let (newline, words) = match args.get(1) {
                    Some(&"-n") => (false, &args[2..]),
                    _ => (true, &args[1..]),
                };
                let mut line = words.join(" ");
                if newline {
                    line.push('\n');
                }
                i32::from(sys::write_all(output, line.as_bytes()).is_err())
            }
            "exit" => {
                let code = match args.get(1) {
                    Some(n) => n.parse().unwrap_or(2),
                    None => self.status,
                };
                self.exit = Some(code);
                code
            }
            _ => return None,
        })
    }
}
