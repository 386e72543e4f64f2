//! The crate's only `unsafe`: task memory, the raw waker, the run-queue links and the IPI
//! ring slots (STYLE.md C.1, C.4).
//!
//! Everything here exposes safe APIs whose soundness arguments are local to this module:
//! `task` (state word, refcount, stage, join slot), `queue` (intrusive run queue) and
//! `ring` (SPSC IPI rings with claimed endpoints).
#![allow(unsafe_code)]

pub(crate) mod queue;
pub(crate) mod ring;
pub(crate) mod task;
