// SPDX-License-Identifier: MIT OR Apache-2.0
//! Path resolution: components, `.`, `..`, mount crossing, symlinks, trailing slashes.
//!
//! The walk is iterative: following a symlink replaces the rest of the path with
//! `target + rest` (allocating only then), so a path without symlinks is resolved without
//! allocating, and every component lookup goes through the namecache.
//!
//! Rules (POSIX.1-2017 4.13 "Pathname Resolution", with Linux's choices where it leaves
//! room):
//! - an empty path is `NoEnt`; `PATH_MAX` or longer, or a component over `NAME_MAX`, is
//!   `NameTooLong`; a NUL byte is `Inval`;
//! - every component but the last must be a directory (`NotDir`), after following symlinks;
//! - the last component is followed if it is a symlink unless the caller says not to, but
//!   always when the path ends in `/`; a path ending in `/` must name a directory;
//! - more than `SYMLOOP_MAX` symlinks in one resolution is `Loop`;
//! - `..` at the root stays at the root; `..` at the root of a mounted filesystem goes to
//!   the parent of the directory it is mounted on.

use alloc::{borrow::Cow, vec::Vec};

use abi::{Errno, FileType};

use super::{Vfs, Vnode};
use crate::{
    path::{NAME_MAX, PATH_MAX, SYMLOOP_MAX, check_path},
    proto::{Name, VnodeDone, VnodeMsg, VnodeOp},
};

/// The last component of a path, for operations on names (create, remove, rename).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Last {
    /// A real name.
    Name(Name),
    /// `.`
    Dot,
    /// `..`
    DotDot,
    /// No last component: the path is `/` (or only slashes after a symlink to `/`).
    Root,
}

/// The result of a parent walk.
pub(super) struct ParentWalk {
    /// The directory that holds (or would hold) the last component.
    pub(super) dir: Vnode,
    pub(super) last: Last,
    /// The path ended in `/`.
    pub(super) trailing_slash: bool,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    Follow,
    NoFollow,
    Parent,
}

enum Walked {
    Node(Vnode),
    Parent(ParentWalk),
}

impl Vfs {
    /// Resolves `path` (relative to `at` unless absolute) to a file. `follow` says whether
    /// a symlink in the last component is followed (it always is with a trailing `/`).
    ///
    /// # Errors
    /// See the module docs.
    pub async fn lookup(&self, at: &Vnode, path: &[u8], follow: bool) -> Result<Vnode, Errno> {
        let mode = if follow { Mode::Follow } else { Mode::NoFollow };
        match self.walk(at, path, mode, &mut 0).await? {
            Walked::Node(v) => Ok(v),
            Walked::Parent(_) => Err(Errno::Io),
        }
    }

    /// Resolves everything but the last component of `path`.
    pub(super) async fn walk_parent(
        &self,
        at: &Vnode,
        path: &[u8],
        links: &mut u32,
    ) -> Result<ParentWalk, Errno> {
        match self.walk(at, path, Mode::Parent, links).await? {
            Walked::Parent(p) => Ok(p),
            Walked::Node(_) => Err(Errno::Io),
        }
    }

    /// The target of symlink `v`.
    pub(super) async fn read_link_of(&self, v: &Vnode) -> Result<Vec<u8>, Errno> {
        let mut msg = v
            .port()
            .call(VnodeMsg::new(VnodeOp::ReadLink { ino: v.ino }))
            .await;
        match msg.take_result()? {
            VnodeDone::Count(n) => {
                msg.buf.truncate(n);
                Ok(msg.buf)
            }
            _ => Err(Errno::Io),
        }
    }

    /// Counts one more symlink and reads its target.
    pub(super) async fn follow_link(&self, v: &Vnode, links: &mut u32) -> Result<Vec<u8>, Errno> {
        *links += 1;
        if *links > SYMLOOP_MAX {
            return Err(Errno::Loop);
        }
        let target = self.read_link_of(v).await?;
        if target.is_empty() {
            return Err(Errno::NoEnt);
        }
        Ok(target)
    }

    async fn walk(
        &self,
        at: &Vnode,
        path: &[u8],
        mode: Mode,
        links: &mut u32,
    ) -> Result<Walked, Errno> {
        check_path(path)?;
        let mut buf: Cow<'_, [u8]> = Cow::Borrowed(path);
        let mut pos = 0;
        let mut cur = if path[0] == b'/' {
            self.root.clone()
        } else {
            at.clone()
        };
        loop {
            let bytes: &[u8] = &buf;
            while pos < bytes.len() && bytes[pos] == b'/' {
                pos += 1;
            }
            if cur.kind != FileType::Directory {
                return Err(Errno::NotDir);
            }
            if pos == bytes.len() {
                // Only slashes left: the result is `cur` itself, a directory.
                return Ok(match mode {
                    Mode::Parent => Walked::Parent(ParentWalk {
                        dir: cur,
                        last: Last::Root,
                        trailing_slash: true,
                    }),
                    _ => Walked::Node(cur),
                });
            }
            let end = bytes[pos..]
                .iter()
                .position(|&b| b == b'/')
                .map_or(bytes.len(), |i| pos + i);
            let mut after = end;
            while after < bytes.len() && bytes[after] == b'/' {
                after += 1;
            }
            let is_last = after == bytes.len();
            let trailing_slash = is_last && end < bytes.len();
            let comp = &bytes[pos..end];
            if comp.len() > NAME_MAX {
                return Err(Errno::NameTooLong);
            }
            if is_last && mode == Mode::Parent {
                let last = match comp {
                    b"." => Last::Dot,
                    b".." => Last::DotDot,
                    name => Last::Name(name.into()),
                };
                return Ok(Walked::Parent(ParentWalk {
                    dir: cur,
                    last,
                    trailing_slash,
                }));
            }
            match comp {
                b"." => {
                    pos = end;
                    continue;
                }
                b".." => {
                    cur = self.dotdot(&cur).await?;
                    pos = end;
                    continue;
                }
                _ => {}
            }
            let next = match self.lookup_cached(&cur, comp) {
                Some(answer) => self.cross_mounts(answer?),
                None => self.cross_mounts(self.lookup_uncached(&cur, comp).await?),
            };
            if next.kind == FileType::Symlink
                && (!is_last || mode == Mode::Follow || trailing_slash)
            {
                let target = self.follow_link(&next, links).await?;
                let rest = &bytes[end..];
                if target.len() + rest.len() >= PATH_MAX {
                    return Err(Errno::NameTooLong);
                }
                let mut joined = target;
                joined.extend_from_slice(rest);
                if joined[0] == b'/' {
                    cur = self.root.clone();
                }
                buf = Cow::Owned(joined);
                pos = 0;
                continue;
            }
            if is_last {
                if trailing_slash && next.kind != FileType::Directory {
                    return Err(Errno::NotDir);
                }
                return Ok(Walked::Node(next));
            }
            cur = next;
            pos = end;
        }
    }
}
