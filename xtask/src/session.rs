//! Scripted console sessions: type at human speed, send bursts as fast as
//! QEMU takes them, and wait for text, through the guest's serial port. For
//! the console tests (line editing, ^C, ^D, an input storm), which need
//! control keys and waits that `qemu::run_session` (command, prompt,
//! command) does not express.

use std::time::{Duration, Instant};

use crate::qemu::{Boot, PipedQemu};

/// One step of a script.
pub enum Step {
    /// Typed one byte at a time, 300 µs apart, as a person (or `run_session`) would.
    Type(String),
    /// Written to the serial port in one go; QEMU feeds it to the guest as fast
    /// as the guest's UART takes it.
    Burst(Vec<u8>),
    /// Waits until the output since the previous `Expect` contains `text`
    /// (`\r` removed). `label` names the check in the results.
    Expect { label: String, text: String },
    /// Waits this long.
    Pause(Duration),
}

/// How a script went.
pub struct Transcript {
    /// The label of each `Expect` and whether its text appeared, in order; the
    /// first `false` is where the script stopped.
    pub checks: Vec<(String, bool)>,
    /// Everything the guest wrote, `\r` removed.
    pub output: String,
    pub elapsed: Duration,
}

/// Boots `boot` with its serial port on a pipe and runs `steps`; the whole
/// script must finish within `timeout`. QEMU is killed at the end.
pub fn run(boot: &Boot, steps: &[Step], timeout: Duration) -> Result<Transcript, String> {
    let start = Instant::now();
    let mut qemu = PipedQemu::start(boot)?;
    let mut output: Vec<u8> = Vec::new();
    let mut mark = 0; // where the next Expect starts looking
    let mut checks = Vec::new();
    'steps: for step in steps {
        match step {
            Step::Type(text) => qemu.type_slowly(text.bytes()),
            // QEMU's output is read on its own thread, so a full pipe here
            // cannot deadlock against it.
            Step::Burst(bytes) => qemu.write(bytes),
            Step::Pause(d) => std::thread::sleep(*d),
            Step::Expect { label, text } => loop {
                for chunk in qemu.output.try_iter() {
                    output.extend(chunk.into_iter().filter(|&b| b != b'\r'));
                }
                let found = output[mark..]
                    .windows(text.len())
                    .position(|w| w == text.as_bytes());
                if let Some(at) = found {
                    mark += at + text.len();
                    checks.push((label.clone(), true));
                    break;
                }
                if start.elapsed() > timeout || qemu.has_exited() {
                    checks.push((label.clone(), false));
                    break 'steps;
                }
                if let Ok(chunk) = qemu.output.recv_timeout(Duration::from_millis(5)) {
                    output.extend(chunk.into_iter().filter(|&b| b != b'\r'));
                }
            },
        }
    }
    let (_, rest, _) = qemu.stop();
    output.extend(rest.into_iter().filter(|&b| b != b'\r'));
    Ok(Transcript {
        checks,
        output: String::from_utf8_lossy(&output).into_owned(),
        elapsed: start.elapsed(),
    })
}
