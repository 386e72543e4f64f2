// SPDX-License-Identifier: MIT OR Apache-2.0
//! The per-process descriptor table: open files (console included, it is
//! `/dev/console`), pipe ends and user ports.
//!
//! A [`Descriptor`] is a cheap `Arc` clone: `dup` and `Spawn`'s fd map share the open file
//! description, as POSIX says. The lowest free number is used; at most [`MAX_FDS`].

use alloc::{sync::Arc, vec::Vec};

use abi::Errno;
use fs::OpenFile;

use crate::{
    pipe::{PipeReader, PipeWriter},
    port::PortHandle,
};

/// Most descriptors one process may have open (`EMFILE` past it).
pub const MAX_FDS: usize = 1024;

/// What a descriptor refers to.
#[derive(Clone)]
pub enum Descriptor {
    /// A file, directory or device opened through the VFS.
    File(Arc<OpenFile>),
    /// The read end of a pipe.
    PipeRead(Arc<PipeReader>),
    /// The write end of a pipe.
    PipeWrite(Arc<PipeWriter>),
    /// A user message port.
    Port(Arc<PortHandle>),
}

impl Descriptor {
    /// The open file, or `not_file` for a pipe or port.
    pub(crate) fn file(&self, not_file: Errno) -> Result<&Arc<OpenFile>, Errno> {
        match self {
            Descriptor::File(f) => Ok(f),
            _ => Err(not_file),
        }
    }
}

#[derive(Clone)]
struct Slot {
    descriptor: Descriptor,
    close_on_exec: bool,
}

/// A descriptor table.
#[derive(Clone, Default)]
pub struct Files {
    slots: Vec<Option<Slot>>,
}

impl Files {
    /// An empty table.
    pub fn new() -> Files {
        Files::default()
    }

    /// The descriptor at `fd`.
    ///
    /// # Errors
    /// `BadF` if `fd` is not open.
    pub fn get(&self, fd: i32) -> Result<Descriptor, Errno> {
        usize::try_from(fd)
            .ok()
            .and_then(|i| self.slots.get(i))
            .and_then(|s| s.as_ref())
            .map(|s| s.descriptor.clone())
            .ok_or(Errno::BadF)
    }

    /// Puts `d` at the lowest free number `>= min`.
    ///
    /// # Errors
    /// `MFile` when full.
    pub fn insert_from(
        &mut self,
        d: Descriptor,
        min: usize,
        close_on_exec: bool,
    ) -> Result<i32, Errno> {
        let free = (min..MAX_FDS).find(|&i| self.slots.get(i).is_none_or(|s| s.is_none()));
        let i = free.ok_or(Errno::MFile)?;
        self.set(i, d, close_on_exec);
        Ok(i as i32)
    }

    /// Puts `d` at the lowest free number.
    ///
    /// # Errors
    /// `MFile` when full.
    pub fn insert(&mut self, d: Descriptor, close_on_exec: bool) -> Result<i32, Errno> {
        self.insert_from(d, 0, close_on_exec)
    }

    /// Puts `d` at `fd`, returning what was there (the caller drops it outside any lock).
    ///
    /// # Errors
    /// `BadF` if `fd` is negative or `>= MAX_FDS`.
    pub fn insert_at(
        &mut self,
        fd: i32,
        d: Descriptor,
        close_on_exec: bool,
    ) -> Result<Option<Descriptor>, Errno> {
        let i = usize::try_from(fd)
            .ok()
            .filter(|&i| i < MAX_FDS)
            .ok_or(Errno::BadF)?;
        let old = self
            .slots
            .get_mut(i)
            .and_then(|s| s.take())
            .map(|s| s.descriptor);
        self.set(i, d, close_on_exec);
        Ok(old)
    }

    fn set(&mut self, i: usize, descriptor: Descriptor, close_on_exec: bool) {
        if self.slots.len() <= i {
            self.slots.resize(i + 1, None);
        }
        self.slots[i] = Some(Slot {
            descriptor,
            close_on_exec,
        });
    }

    /// Removes `fd`, returning its descriptor (dropping it may close the file).
    ///
    /// # Errors
    /// `BadF` if `fd` is not open.
    pub fn remove(&mut self, fd: i32) -> Result<Descriptor, Errno> {
        let d = usize::try_from(fd)
            .ok()
            .and_then(|i| self.slots.get_mut(i))
            .and_then(|s| s.take())
            .map(|s| s.descriptor)
            .ok_or(Errno::BadF)?;
        while matches!(self.slots.last(), Some(None)) {
            self.slots.pop();
        }
        Ok(d)
    }

    /// Whether `fd` is marked close-on-exec.
    ///
    /// # Errors
    /// `BadF` if `fd` is not open.
    pub fn close_on_exec(&self, fd: i32) -> Result<bool, Errno> {
        usize::try_from(fd)
            .ok()
            .and_then(|i| self.slots.get(i))
            .and_then(|s| s.as_ref())
            .map(|s| s.close_on_exec)
            .ok_or(Errno::BadF)
    }

    /// Number of open descriptors.
    pub fn len(&self) -> usize {
        self.slots.iter().filter(|s| s.is_some()).count()
    }

    /// True if nothing is open.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Removes everything (process exit), returning the descriptors to drop.
    pub fn take_all(&mut self) -> Vec<Descriptor> {
        core::mem::take(&mut self.slots)
            .into_iter()
            .flatten()
            .map(|s| s.descriptor)
            .collect()
    }
}
