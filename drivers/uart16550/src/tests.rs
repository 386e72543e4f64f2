// SPDX-License-Identifier: MIT OR Apache-2.0
//! Host tests: a fake 16550, the driver over it, the line discipline, the console.

extern crate std;

use alloc::boxed::Box;
use alloc::collections::VecDeque;
use alloc::string::String;
use alloc::sync::Arc;
use alloc::vec::Vec;
use core::future::Future;
use core::pin::pin;
use core::task::{Context, Poll, Waker};
use std::sync::Mutex;

use embedded_io_async::{Read, Write};

use crate::regs::*;
use crate::*;

// ---------------------------------------------------------------------------------------
// The fake device
// ---------------------------------------------------------------------------------------

#[derive(Default)]
struct FakeState {
    /// Received bytes with the LSR error bits that go with each.
    rx: VecDeque<(u8, u8)>,
    /// Sticky until LSR is read.
    overrun: bool,
    tx: Vec<u8>,
    /// LSR reads that still report the transmitter busy.
    tx_busy_reads: u32,
    ier: u8,
    lcr: u8,
    fcr: u8,
    mcr: u8,
    scr: u8,
    dll: u8,
    dlm: u8,
    absent: bool,
    /// Every write, in order.
    writes: Vec<(u8, u8)>,
    lsr_reads: u32,
}

/// Runs once, right after the next RBR read, outside the fake's lock: plays an
/// interrupt arriving in the middle of a drain.
type Hook = Box<dyn FnOnce() + Send>;

#[derive(Default, Clone)]
struct FakeUart(Arc<Mutex<FakeState>>, Arc<Mutex<Option<Hook>>>);

impl FakeUart {
    fn receive(&self, bytes: &[u8]) {
        let mut s = self.0.lock().unwrap();
        s.rx.extend(bytes.iter().map(|&b| (b, 0)));
    }
    fn receive_with_error(&self, byte: u8, bits: u8) {
        self.0.lock().unwrap().rx.push_back((byte, bits));
    }
    fn tx(&self) -> Vec<u8> {
        self.0.lock().unwrap().tx.clone()
    }
    fn fifo_len(&self) -> usize {
        self.0.lock().unwrap().rx.len()
    }
}

impl Registers for FakeUart {
    fn read(&self, offset: u8) -> u8 {
        let value = self.read_locked(offset);
        if offset == RBR
            && let Some(hook) = self.1.lock().unwrap().take()
        {
            hook();
        }
        value
    }

    fn write(&self, offset: u8, value: u8) {
        self.write_locked(offset, value)
    }
}

impl FakeUart {
    fn read_locked(&self, offset: u8) -> u8 {
        let mut s = self.0.lock().unwrap();
        if s.absent {
            return 0xff;
        }
        let dlab = s.lcr & LCR_DLAB != 0;
        match offset {
            0 if dlab => s.dll,
            0 => s.rx.pop_front().map_or(0, |(b, _)| b),
            1 if dlab => s.dlm,
            1 => s.ier,
            2 => {
                if !s.rx.is_empty() && s.ier & IER_RX_DATA != 0 {
                    0xc4
                } else {
                    0xc1
                }
            }
            3 => s.lcr,
            4 => s.mcr,
            5 => {
                s.lsr_reads += 1;
                let mut lsr = 0;
                if let Some(&(_, bits)) = s.rx.front() {
                    lsr |= LSR_DATA_READY | bits;
                }
                if core::mem::take(&mut s.overrun) {
                    lsr |= LSR_OVERRUN;
                }
                if s.tx_busy_reads > 0 {
                    s.tx_busy_reads -= 1;
                } else {
                    lsr |= LSR_THR_EMPTY | 0x40;
                }
                lsr
            }
            7 => s.scr,
            _ => 0,
        }
    }

    fn write_locked(&self, offset: u8, value: u8) {
        let mut s = self.0.lock().unwrap();
        if s.absent {
            return;
        }
        s.writes.push((offset, value));
        let dlab = s.lcr & LCR_DLAB != 0;
        match offset {
            0 if dlab => s.dll = value,
            0 => s.tx.push(value),
            1 if dlab => s.dlm = value,
            1 => s.ier = value,
            2 => s.fcr = value,
            3 => s.lcr = value,
            4 => s.mcr = value,
            7 => s.scr = value,
            _ => {}
        }
    }
}

fn new_uart() -> (FakeUart, Uart<FakeUart>, UartInterrupt<FakeUart>) {
    let fake = FakeUart::default();
    let (uart, irq) = Uart::try_new(fake.clone(), Config::default()).expect("fake is present");
    (fake, uart, irq)
}

/// Polls `f` once with a waker that counts wakes.
fn poll_once<F: Future>(f: core::pin::Pin<&mut F>) -> Poll<F::Output> {
    f.poll(&mut Context::from_waker(Waker::noop()))
}

/// Drives `f` to completion; panics if it needs more than `limit` polls.
fn block_on<F: Future>(f: F, limit: usize) -> F::Output {
    let mut f = pin!(f);
    for _ in 0..limit {
        if let Poll::Ready(v) = poll_once(f.as_mut()) {
            return v;
        }
    }
    panic!("future not done after {limit} polls");
}

// ---------------------------------------------------------------------------------------
// The driver
// ---------------------------------------------------------------------------------------

#[test]
fn init_programs_divisor_8n1_fifo_and_leaves_interrupts_off() {
    let fake = FakeUart::default();
    let (uart, _irq) = Uart::try_new(fake.clone(), Config { baud: 9600 }).unwrap();
    {
        let s = fake.0.lock().unwrap();
        assert_eq!((s.dll, s.dlm), (12, 0), "115200 / 9600 = 12");
        assert_eq!(s.lcr, LCR_8N1, "DLAB off again, 8N1");
        assert_eq!(s.fcr, FCR_ENABLE_TRIGGER_14);
        assert_eq!(s.mcr, MCR_DTR_RTS_OUT2);
        assert_eq!(s.ier, 0);
    }
    uart.enable_interrupts();
    assert_eq!(fake.0.lock().unwrap().ier, IER_RX_DATA | IER_LINE_STATUS);
}

#[test]
fn init_refuses_a_missing_device_and_a_bad_baud_rate() {
    let fake = FakeUart::default();
    fake.0.lock().unwrap().absent = true;
    assert_eq!(
        Uart::try_new(fake, Config::default()).err(),
        Some(InitError::NotPresent)
    );
    let fake = FakeUart::default();
    for baud in [0, 7, 200_000] {
        assert_eq!(
            Uart::try_new(fake.clone(), Config { baud }).err(),
            Some(InitError::BadBaud(baud))
        );
    }
    let s = fake.0.lock().unwrap();
    assert!(
        s.writes.iter().all(|&(offset, _)| offset == SCR),
        "a refused init touches only the scratch register: {:?}",
        s.writes
    );
}

#[test]
fn input_waiting_before_init_is_kept() {
    let fake = FakeUart::default();
    fake.receive(b"early");
    let (mut uart, _irq) = Uart::try_new(fake, Config::default()).unwrap();
    let mut buf = [0u8; 16];
    let n = block_on(uart.read(&mut buf), 1).unwrap();
    assert_eq!(&buf[..n], b"early");
}

#[test]
fn on_interrupt_drains_the_rx_fifo_into_the_ring_and_a_read_returns_it() {
    let (fake, mut uart, irq) = new_uart();
    let mut buf = [0u8; 64];
    let n = {
        let mut read = pin!(uart.read(&mut buf));
        assert!(
            poll_once(read.as_mut()).is_pending(),
            "nothing received yet"
        );
        fake.receive(b"hello, 16550");
        assert!(irq.on_interrupt(), "bytes moved: the task must be woken");
        assert_eq!(fake.fifo_len(), 0, "the interrupt half empties the FIFO");
        irq.wake();
        let Poll::Ready(Ok(n)) = poll_once(read.as_mut()) else {
            panic!("read not ready after the interrupt")
        };
        n
    };
    assert_eq!(&buf[..n], b"hello, 16550");
    assert!(!irq.on_interrupt(), "a spurious interrupt wakes nobody");
    let stats = uart.stats();
    assert_eq!((stats.interrupts, stats.rx_bytes), (2, 12));
}

#[test]
fn overrun_is_counted_reported_once_and_not_fatal() {
    let (fake, mut uart, irq) = new_uart();
    fake.receive(b"ab");
    fake.0.lock().unwrap().overrun = true;
    assert!(irq.on_interrupt());
    let mut buf = [0u8; 8];
    let err = block_on(uart.read(&mut buf), 1).unwrap_err();
    assert!(err.is_overrun() && !err.is_parity(), "{err}");
    assert_eq!(
        embedded_io_async::Error::kind(&err),
        embedded_io_async::ErrorKind::Other
    );
    let n = block_on(uart.read(&mut buf), 1).unwrap();
    assert_eq!(
        &buf[..n],
        b"ab",
        "the data around the overrun still arrives"
    );
    assert_eq!(uart.stats().overruns, 1);
    fake.receive(b"c");
    irq.on_interrupt();
    assert_eq!(block_on(uart.read(&mut buf), 1), Ok(1), "no stale error");
}

#[test]
fn bytes_with_parity_or_framing_errors_or_a_break_are_dropped_and_reported() {
    let (fake, mut uart, irq) = new_uart();
    fake.receive(b"x");
    fake.receive_with_error(b'?', LSR_PARITY);
    fake.receive_with_error(b'!', LSR_FRAMING);
    fake.receive_with_error(0, LSR_BREAK);
    fake.receive(b"y");
    irq.on_interrupt();
    let mut buf = [0u8; 8];
    let err = block_on(uart.read(&mut buf), 1).unwrap_err();
    assert!(
        err.is_parity() && err.is_framing() && err.is_break(),
        "{err}"
    );
    assert_eq!(
        alloc::format!("{err}"),
        "parity error, framing error, break"
    );
    let n = block_on(uart.read(&mut buf), 1).unwrap();
    assert_eq!(&buf[..n], b"xy");
    let s = uart.stats();
    assert_eq!((s.parity_errors, s.framing_errors, s.breaks), (1, 1, 1));
}

#[test]
fn a_full_ring_leaves_input_in_the_fifo_and_reading_pulls_it_in() {
    let (fake, mut uart, irq) = new_uart();
    let data: Vec<u8> = (0..RX_RING_BYTES + 100).map(|i| (i % 251) as u8).collect();
    fake.receive(&data);
    irq.on_interrupt();
    assert_eq!(fake.fifo_len(), 100, "the ring took what it could");
    assert!(uart.stats().rx_stalls >= 1);
    let mut got = Vec::new();
    let mut buf = [0u8; 1000];
    while got.len() < data.len() {
        let n = block_on(uart.read(&mut buf), 1).unwrap();
        got.extend_from_slice(&buf[..n]);
    }
    assert_eq!(got, data, "nothing lost or reordered");
    assert_eq!(uart.stats().overruns, 0);
}

#[test]
fn an_interrupt_during_a_task_drain_skips_and_the_task_picks_up_its_bytes() {
    let (fake, mut uart, irq) = new_uart();
    let irq = Arc::new(irq);
    let skipped = Arc::new(Mutex::new(None));
    {
        let (fake2, irq2, skipped2) = (fake.clone(), irq.clone(), skipped.clone());
        *fake.1.lock().unwrap() = Some(Box::new(move || {
            // The last byte was just popped by the task's drain; a new one arrives
            // and its interrupt comes while the task still holds the drain.
            fake2.receive(b"2");
            *skipped2.lock().unwrap() = Some(irq2.on_interrupt());
        }));
    }
    fake.receive(b"1");
    let mut buf = [0u8; 4];
    let mut got = Vec::new();
    while got.len() < 2 {
        let n = block_on(uart.read(&mut buf), 1).unwrap();
        got.extend_from_slice(&buf[..n]);
    }
    assert_eq!(
        got, b"12",
        "the byte that arrived mid-drain is not stranded"
    );
    assert_eq!(
        *skipped.lock().unwrap(),
        Some(false),
        "the interrupt did not drain"
    );
    assert_eq!(fake.fifo_len(), 0);
}

#[test]
fn a_read_drains_the_fifo_itself_without_an_interrupt() {
    // Polled operation (no IRQ routed): reads still see input.
    let (fake, mut uart, _irq) = new_uart();
    let mut buf = [0u8; 4];
    fake.receive(b"2");
    assert_eq!(block_on(uart.read(&mut buf), 1), Ok(1));
    assert_eq!(buf[0], b'2');
}

#[test]
fn concurrent_drainers_deliver_every_byte_once_in_order() {
    let (fake, mut uart, irq) = new_uart();
    let irq = Arc::new(irq);
    let total = 50_000usize;
    let feeder = {
        let fake = fake.clone();
        let irq = irq.clone();
        std::thread::spawn(move || {
            for chunk in (0..total).collect::<Vec<_>>().chunks(37) {
                let bytes: Vec<u8> = chunk.iter().map(|&i| (i % 256) as u8).collect();
                // Flow control as QEMU does it: only send what the FIFO can take.
                while fake.fifo_len() > 64 {
                    std::thread::yield_now();
                }
                fake.receive(&bytes);
                irq.on_interrupt();
            }
        })
    };
    let mut got = Vec::new();
    let mut buf = [0u8; 256];
    while got.len() < total {
        let polled = {
            let mut read = pin!(uart.read(&mut buf));
            poll_once(read.as_mut())
        };
        match polled {
            Poll::Ready(Ok(n)) => got.extend_from_slice(&buf[..n]),
            Poll::Ready(Err(e)) => panic!("unexpected {e}"),
            Poll::Pending => std::thread::yield_now(),
        }
    }
    feeder.join().unwrap();
    let want: Vec<u8> = (0..total).map(|i| (i % 256) as u8).collect();
    assert_eq!(got.len(), want.len());
    assert!(got == want, "bytes lost, duplicated or reordered");
}

#[test]
fn write_goes_out_in_fifo_bursts_and_yields_while_the_transmitter_is_busy() {
    let (fake, mut uart, _irq) = new_uart();
    let data: Vec<u8> = (0..40u8).collect();
    let mut write = pin!(uart.write_all(&data));
    assert!(
        poll_once(write.as_mut()).is_ready(),
        "an idle UART takes it all"
    );
    assert_eq!(fake.tx(), data);

    let (fake, mut uart, _irq) = new_uart();
    fake.0.lock().unwrap().tx_busy_reads = 3;
    {
        let mut write = pin!(uart.write(b"abc"));
        for _ in 0..3 {
            assert!(
                poll_once(write.as_mut()).is_pending(),
                "busy: yield, do not spin"
            );
        }
        assert_eq!(poll_once(write.as_mut()), Poll::Ready(Ok(3)));
    }
    assert_eq!(fake.tx(), b"abc");
    let mut one = pin!(uart.write(&[0u8; 100]));
    assert_eq!(
        poll_once(one.as_mut()),
        Poll::Ready(Ok(TX_FIFO_BYTES)),
        "at most a FIFO per look"
    );
}

#[test]
fn blocking_write_sends_everything_and_survives_a_stuck_transmitter() {
    let (fake, uart, _irq) = new_uart();
    let tx = uart.transmitter();
    tx.blocking_write(b"0123456789abcdefXYZ");
    assert_eq!(fake.tx(), b"0123456789abcdefXYZ");
    fake.0.lock().unwrap().tx_busy_reads = u32::MAX;
    tx.blocking_write(b"!");
    assert_eq!(fake.tx().last(), Some(&b'!'), "bounded wait, then written");
}

// ---------------------------------------------------------------------------------------
// The line discipline
// ---------------------------------------------------------------------------------------

/// Types `bytes`; returns the echo and the events that were not `None`.
fn type_in(ld: &mut LineDiscipline, bytes: &[u8]) -> (String, Vec<Event>) {
    let mut echo = Vec::new();
    let events = bytes
        .iter()
        .map(|&b| ld.input(b, &mut echo))
        .filter(|e| *e != Event::None)
        .collect();
    (String::from_utf8(echo).unwrap(), events)
}

fn read_line(ld: &mut LineDiscipline) -> Option<Vec<u8>> {
    let mut buf = [0u8; 8192];
    ld.read(&mut buf).map(|n| buf[..n].to_vec())
}

#[test]
fn typing_echoes_and_enter_delivers_the_line_with_a_newline() {
    let mut ld = LineDiscipline::new();
    let (echo, events) = type_in(&mut ld, b"ls -l");
    assert_eq!(echo, "ls -l");
    assert!(events.is_empty());
    assert_eq!(read_line(&mut ld), None, "nothing until Enter");
    let (echo, events) = type_in(&mut ld, b"\r");
    assert_eq!(echo, "\r\n");
    assert_eq!(events, [Event::Ready]);
    assert_eq!(read_line(&mut ld).as_deref(), Some(&b"ls -l\n"[..]));
    assert_eq!(read_line(&mut ld), None);
}

#[test]
fn backspace_and_del_erase_and_do_nothing_at_the_start_of_a_line() {
    let mut ld = LineDiscipline::new();
    let (echo, _) = type_in(&mut ld, b"\x08\x7fab\x7fc\x08\x08\x08d\n");
    assert_eq!(echo, "ab\x08 \x08c\x08 \x08\x08 \x08d\r\n");
    assert_eq!(read_line(&mut ld).as_deref(), Some(&b"d\n"[..]));
}

#[test]
fn backspace_erases_a_whole_utf8_character() {
    let mut ld = LineDiscipline::new();
    let (echo, _) = type_in(&mut ld, "aé€\x7f\x7f".as_bytes());
    assert_eq!(echo, "aé€\x08 \x08\x08 \x08");
    assert_eq!(ld.pending_line(), b"a");
}

#[test]
fn ctrl_u_kills_the_line() {
    let mut ld = LineDiscipline::new();
    let (echo, _) = type_in(&mut ld, b"abc\x15x\r");
    assert_eq!(echo, "abc\x08 \x08\x08 \x08\x08 \x08x\r\n");
    assert_eq!(read_line(&mut ld).as_deref(), Some(&b"x\n"[..]));
}

#[test]
fn ctrl_c_discards_the_line_echoes_and_raises_an_interrupt() {
    let mut ld = LineDiscipline::new();
    let (echo, events) = type_in(&mut ld, b"sleep 100\x03");
    assert_eq!(echo, "sleep 100^C\r\n");
    assert_eq!(events, [Event::Interrupt]);
    assert_eq!(read_line(&mut ld), None, "the line is gone");
    assert!(ld.pending_line().is_empty());
    type_in(&mut ld, b"ok\r");
    assert_eq!(read_line(&mut ld).as_deref(), Some(&b"ok\n"[..]));
}

#[test]
fn ctrl_d_on_an_empty_line_is_end_of_file() {
    let mut ld = LineDiscipline::new();
    let (echo, events) = type_in(&mut ld, b"\x04");
    assert_eq!(echo, "");
    assert_eq!(events, [Event::Ready]);
    assert_eq!(
        read_line(&mut ld).as_deref(),
        Some(&b""[..]),
        "read returns 0"
    );
    assert_eq!(read_line(&mut ld), None, "one end of file per ^D");
}

#[test]
fn ctrl_d_on_a_non_empty_line_delivers_it_without_a_newline() {
    let mut ld = LineDiscipline::new();
    type_in(&mut ld, b"abc\x04\x04");
    assert_eq!(read_line(&mut ld).as_deref(), Some(&b"abc"[..]));
    assert_eq!(read_line(&mut ld).as_deref(), Some(&b""[..]), "then EOF");
}

#[test]
fn a_read_returns_at_most_one_line_and_long_lines_over_several_reads() {
    let mut ld = LineDiscipline::new();
    type_in(&mut ld, b"one\rtwo\r");
    assert_eq!(read_line(&mut ld).as_deref(), Some(&b"one\n"[..]));
    let mut small = [0u8; 2];
    assert_eq!(ld.read(&mut small), Some(2));
    assert_eq!(&small, b"tw");
    assert_eq!(ld.read(&mut small), Some(2));
    assert_eq!(&small, b"o\n");
    assert_eq!(ld.read(&mut small), None);
}

#[test]
fn a_line_stops_growing_at_max_line_with_a_bell() {
    let mut ld = LineDiscipline::new();
    let long = alloc::vec![b'x'; MAX_LINE + 10];
    let (echo, _) = type_in(&mut ld, &long);
    assert_eq!(ld.pending_line().len(), MAX_LINE);
    assert_eq!(echo.matches('\x07').count(), 10);
    type_in(&mut ld, b"\x7fy\r");
    let line = read_line(&mut ld).unwrap();
    assert_eq!(line.len(), MAX_LINE + 1);
    assert_eq!(&line[MAX_LINE - 1..], b"y\n");
}

#[test]
fn crlf_is_one_line_end_and_escape_sequences_are_swallowed() {
    let mut ld = LineDiscipline::new();
    type_in(&mut ld, b"a\r\nb\n\nc\x1b[A\x1b[1;5Dd\x01\r");
    assert_eq!(read_line(&mut ld).as_deref(), Some(&b"a\n"[..]));
    assert_eq!(read_line(&mut ld).as_deref(), Some(&b"b\n"[..]));
    assert_eq!(
        read_line(&mut ld).as_deref(),
        Some(&b"\n"[..]),
        "LF LF: two lines"
    );
    assert_eq!(read_line(&mut ld).as_deref(), Some(&b"cd\n"[..]));
}

#[test]
fn onlcr_turns_newlines_into_crlf() {
    let mut out = Vec::new();
    onlcr(b"a\nb\n\nc", |c| out.extend_from_slice(c));
    assert_eq!(out, b"a\r\nb\r\n\r\nc");
}

// ---------------------------------------------------------------------------------------
// The console
// ---------------------------------------------------------------------------------------

#[test]
fn ctrl_c_interrupts_a_waiting_read_once_and_only_a_waiting_one() {
    let console = Console::new();
    let mut buf = [0u8; 16];
    let mut echo = Vec::new();
    // No reader waiting: ^C interrupts nothing here (the hook still counts it).
    assert_eq!(console.input(b"\x03", &mut echo).interrupts, 1);
    assert_eq!(console.try_read(&mut buf), Err(ReadError::WouldBlock));
    // A waiting reader gets Interrupted, once.
    let cx = &mut Context::from_waker(Waker::noop());
    assert!(console.poll_read(cx, &mut buf).is_pending());
    console.input(b"ab\x03", &mut echo);
    assert_eq!(
        console.poll_read(cx, &mut buf),
        Poll::Ready(Err(ReadError::Interrupted))
    );
    assert!(console.poll_read(cx, &mut buf).is_pending());
    console.input(b"x\r", &mut echo);
    assert_eq!(console.poll_read(cx, &mut buf), Poll::Ready(Ok(2)));
    assert_eq!(&buf[..2], b"x\n");
}

#[test]
fn input_stops_when_the_discipline_is_full_and_resumes_after_reads() {
    let console = Console::new();
    let line = [b'z'; 99];
    let mut echo = Vec::new();
    let mut fed = 0;
    let mut lines = 0;
    loop {
        let mut bytes = line.to_vec();
        bytes.push(b'\r');
        let took = console.input(&bytes, &mut echo).consumed;
        fed += took;
        if took < bytes.len() {
            break;
        }
        lines += 1;
        assert!(lines < 1000, "input never stopped");
    }
    assert!(fed <= MAX_READY, "bounded: {fed}");
    let mut buf = [0u8; 200];
    assert_eq!(console.try_read(&mut buf), Ok(100));
    let mut rest = line.to_vec();
    rest.push(b'\r');
    assert!(console.input(&rest, &mut echo).consumed > 0, "room again");
}

/// The whole path: a fake UART, the driver task and a reader, with input arriving in a
/// storm (chunks as large as the FIFO allows, interrupt after each).
#[test]
fn a_storm_of_input_arrives_intact_through_driver_task_and_discipline() {
    let (fake, uart, irq) = new_uart();
    let console = Console::new();
    let interrupts = core::cell::Cell::new(0);
    let mut payload = Vec::new();
    for i in 0..600 {
        payload.extend_from_slice(alloc::format!("line {i:04} of the storm\n").as_bytes());
    }
    let mut task = pin!(console.run(uart, || interrupts.set(interrupts.get() + 1)));
    let mut got = Vec::new();
    let mut sent = 0;
    let mut buf = [0u8; 64];
    let mut idle_rounds = 0;
    while got.len() < payload.len() {
        let before = (sent, got.len());
        if sent < payload.len() && fake.fifo_len() < 16 {
            let n = (16 - fake.fifo_len()).min(payload.len() - sent);
            fake.receive(&payload[sent..sent + n]);
            sent += n;
            irq.on_interrupt();
        }
        assert!(poll_once(task.as_mut()).is_pending(), "the task never ends");
        while let Ok(n) = console.try_read(&mut buf) {
            assert!(n > 0);
            got.extend_from_slice(&buf[..n]);
        }
        idle_rounds = if before == (sent, got.len()) {
            idle_rounds + 1
        } else {
            0
        };
        assert!(idle_rounds < 100, "stalled after {} bytes", got.len());
    }
    assert!(got == payload, "bytes lost or reordered");
    assert_eq!(interrupts.get(), 0);
    let echo = fake.tx();
    let cooked_echo: Vec<u8> = payload
        .iter()
        .flat_map(|&b| {
            if b == b'\n' {
                b"\r\n".to_vec()
            } else {
                alloc::vec![b]
            }
        })
        .collect();
    assert!(echo == cooked_echo, "every byte echoed once");
}

#[test]
fn the_task_calls_the_interrupt_hook_for_ctrl_c_and_survives_line_errors() {
    let (fake, uart, irq) = new_uart();
    let console = Console::new();
    let mut interrupts = 0;
    {
        let mut task = pin!(console.run(uart, || interrupts += 1));
        fake.receive(b"sleep 100");
        fake.0.lock().unwrap().overrun = true;
        irq.on_interrupt();
        assert!(poll_once(task.as_mut()).is_pending());
        fake.receive(b"\x03echo hi\r");
        irq.on_interrupt();
        for _ in 0..3 {
            assert!(poll_once(task.as_mut()).is_pending());
        }
    }
    assert_eq!(interrupts, 1);
    let mut buf = [0u8; 32];
    assert_eq!(console.try_read(&mut buf), Ok(8));
    assert_eq!(&buf[..8], b"echo hi\n");
    let echo = String::from_utf8(fake.tx()).unwrap();
    assert_eq!(echo, "sleep 100^C\r\necho hi\r\n");
}
