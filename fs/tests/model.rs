// SPDX-License-Identifier: MIT OR Apache-2.0
//! Property tests: random operation sequences on tmpfs (through the VFS and its ports)
//! and on a small in-memory model of POSIX semantics; every result must agree, the trees
//! must agree after every step, and a failed operation must leave the filesystem exactly
//! as it was (names, types, sizes, link counts, contents, modes, mtime and ctime).
//!
//! The model is written independently of tmpfs: a map of inode to node, resolved by its
//! own path walker, with the POSIX rules written out in the order Linux checks them.

mod common;

use std::collections::{BTreeMap, HashMap};

use abi::{Errno, FileType, OpenFlags};
use common::{inline, tmpfs_vfs};
use fs::{Vfs, Vnode};
use proptest::prelude::*;

// ------------------------------------------------------------------------ operations

#[derive(Clone, Debug)]
enum Op {
    Mkdir(String),
    Create(String),
    Write(String, u64, usize, u8),
    Truncate(String, u64),
    Unlink(String),
    Rmdir(String),
    Rename(String, String, bool),
    Link(String, String),
    Read(String),
    Stat(String),
    ReadDir(String),
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Out {
    Unit,
    Data(Vec<u8>),
    Stat {
        kind: FileType,
        size: u64,
        nlink: u64,
    },
    Names(Vec<String>),
}

fn path() -> impl Strategy<Value = String> {
    prop::collection::vec(prop::sample::select(vec!["a", "b", "c"]), 1..=3)
        .prop_map(|c| format!("/{}", c.join("/")))
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => path().prop_map(Op::Mkdir),
        3 => path().prop_map(Op::Create),
        3 => (path(), prop_oneof![0..64u64, 4000..9000u64, Just(1 << 20)], 0..300usize, any::<u8>())
            .prop_map(|(p, o, l, b)| Op::Write(p, o, l, b)),
        1 => (path(), prop_oneof![0..64u64, 4090..4200u64]).prop_map(|(p, s)| Op::Truncate(p, s)),
        2 => path().prop_map(Op::Unlink),
        2 => path().prop_map(Op::Rmdir),
        3 => (path(), path(), any::<bool>()).prop_map(|(a, b, n)| Op::Rename(a, b, n)),
        2 => (path(), path()).prop_map(|(a, b)| Op::Link(a, b)),
        1 => path().prop_map(Op::Read),
        1 => path().prop_map(Op::Stat),
        1 => prop_oneof![Just("/".to_string()), path()].prop_map(Op::ReadDir),
    ]
}

// ------------------------------------------------------------------------ the model

#[derive(Clone, Debug)]
enum Node {
    File(Vec<u8>),
    Dir(BTreeMap<String, usize>),
}

#[derive(Clone, Debug)]
struct Model {
    nodes: HashMap<usize, Node>,
    next: usize,
}

const ROOT: usize = 0;

impl Model {
    fn new() -> Model {
        Model {
            nodes: HashMap::from([(ROOT, Node::Dir(BTreeMap::new()))]),
            next: 1,
        }
    }

    fn children(&self, dir: usize) -> &BTreeMap<String, usize> {
        match &self.nodes[&dir] {
            Node::Dir(c) => c,
            Node::File(_) => unreachable!(),
        }
    }

    fn children_mut(&mut self, dir: usize) -> &mut BTreeMap<String, usize> {
        match self.nodes.get_mut(&dir).unwrap() {
            Node::Dir(c) => c,
            Node::File(_) => unreachable!(),
        }
    }

    fn is_dir(&self, ino: usize) -> bool {
        matches!(self.nodes[&ino], Node::Dir(_))
    }

    /// (parent directory, last name).
    fn parent(&self, path: &str) -> Result<(usize, String), Errno> {
        let comps: Vec<&str> = path.split('/').filter(|c| !c.is_empty()).collect();
        let mut cur = ROOT;
        for c in &comps[..comps.len() - 1] {
            cur = *self.children(cur).get(*c).ok_or(Errno::NoEnt)?;
            if !self.is_dir(cur) {
                return Err(Errno::NotDir);
            }
        }
        Ok((cur, comps[comps.len() - 1].to_string()))
    }

    fn lookup(&self, path: &str) -> Result<usize, Errno> {
        if path == "/" {
            return Ok(ROOT);
        }
        let (dir, name) = self.parent(path)?;
        self.children(dir).get(&name).copied().ok_or(Errno::NoEnt)
    }

    fn nlink(&self, ino: usize) -> u64 {
        match &self.nodes[&ino] {
            Node::Dir(c) => 2 + c.values().filter(|&&i| self.is_dir(i)).count() as u64,
            Node::File(_) => self
                .nodes
                .values()
                .filter_map(|n| match n {
                    Node::Dir(c) => Some(c.values().filter(|&&i| i == ino).count() as u64),
                    Node::File(_) => None,
                })
                .sum(),
        }
    }

    fn new_node(&mut self, node: Node) -> usize {
        let ino = self.next;
        self.next += 1;
        self.nodes.insert(ino, node);
        ino
    }

    /// Removes `ino` if nothing names it any more.
    fn gc(&mut self, ino: usize) {
        if self.is_dir(ino) || self.nlink(ino) == 0 {
            self.nodes.remove(&ino);
        }
    }

    fn within(&self, dir: usize, ancestor: usize) -> bool {
        // Is `dir` `ancestor` or below it? Search down from `ancestor`.
        if dir == ancestor {
            return true;
        }
        match &self.nodes[&ancestor] {
            Node::Dir(c) => c.values().any(|&i| self.is_dir(i) && self.within(dir, i)),
            Node::File(_) => false,
        }
    }

    fn apply(&mut self, op: &Op) -> Result<Out, Errno> {
        match op {
            Op::Mkdir(p) | Op::Create(p) => {
                let (dir, name) = self.parent(p)?;
                if self.children(dir).contains_key(&name) {
                    return Err(Errno::Exist);
                }
                let node = if matches!(op, Op::Mkdir(_)) {
                    Node::Dir(BTreeMap::new())
                } else {
                    Node::File(Vec::new())
                };
                let ino = self.new_node(node);
                self.children_mut(dir).insert(name, ino);
                Ok(Out::Unit)
            }
            Op::Write(p, off, len, byte) => {
                let ino = self.lookup(p)?;
                match self.nodes.get_mut(&ino).unwrap() {
                    Node::Dir(_) => Err(Errno::IsDir),
                    Node::File(data) => {
                        let (off, len) = (*off as usize, *len);
                        if len > 0 {
                            if data.len() < off + len {
                                data.resize(off + len, 0);
                            }
                            data[off..off + len].fill(*byte);
                        }
                        Ok(Out::Unit)
                    }
                }
            }
            Op::Truncate(p, size) => {
                let ino = self.lookup(p)?;
                match self.nodes.get_mut(&ino).unwrap() {
                    Node::Dir(_) => Err(Errno::IsDir),
                    Node::File(data) => {
                        data.resize(*size as usize, 0);
                        Ok(Out::Unit)
                    }
                }
            }
            Op::Unlink(p) => {
                let (dir, name) = self.parent(p)?;
                let ino = *self.children(dir).get(&name).ok_or(Errno::NoEnt)?;
                if self.is_dir(ino) {
                    return Err(Errno::IsDir);
                }
                self.children_mut(dir).remove(&name);
                self.gc(ino);
                Ok(Out::Unit)
            }
            Op::Rmdir(p) => {
                let (dir, name) = self.parent(p)?;
                let ino = *self.children(dir).get(&name).ok_or(Errno::NoEnt)?;
                match &self.nodes[&ino] {
                    Node::File(_) => return Err(Errno::NotDir),
                    Node::Dir(c) if !c.is_empty() => return Err(Errno::NotEmpty),
                    Node::Dir(_) => {}
                }
                self.children_mut(dir).remove(&name);
                self.gc(ino);
                Ok(Out::Unit)
            }
            Op::Rename(a, b, no_replace) => {
                let (from_dir, from_name) = self.parent(a)?;
                let (to_dir, to_name) = self.parent(b)?;
                let moved = *self
                    .children(from_dir)
                    .get(&from_name)
                    .ok_or(Errno::NoEnt)?;
                let existing = self.children(to_dir).get(&to_name).copied();
                if self.is_dir(moved) && self.within(to_dir, moved) {
                    return Err(Errno::Inval);
                }
                if existing == Some(moved) {
                    return Ok(Out::Unit);
                }
                if let Some(victim) = existing {
                    if *no_replace {
                        return Err(Errno::Exist);
                    }
                    match (&self.nodes[&victim], self.is_dir(moved)) {
                        (Node::Dir(c), true) if !c.is_empty() => return Err(Errno::NotEmpty),
                        (Node::Dir(_), false) => return Err(Errno::IsDir),
                        (Node::File(_), true) => return Err(Errno::NotDir),
                        _ => {}
                    }
                    self.children_mut(to_dir).remove(&to_name);
                    self.gc(victim);
                }
                self.children_mut(from_dir).remove(&from_name);
                self.children_mut(to_dir).insert(to_name, moved);
                Ok(Out::Unit)
            }
            Op::Link(a, b) => {
                let target = self.lookup(a)?;
                let (dir, name) = self.parent(b)?;
                if self.is_dir(target) {
                    return Err(Errno::Perm);
                }
                if self.children(dir).contains_key(&name) {
                    return Err(Errno::Exist);
                }
                self.children_mut(dir).insert(name, target);
                Ok(Out::Unit)
            }
            Op::Read(p) => match &self.nodes[&self.lookup(p)?] {
                Node::Dir(_) => Err(Errno::IsDir),
                Node::File(data) => Ok(Out::Data(data.clone())),
            },
            Op::Stat(p) => {
                let ino = self.lookup(p)?;
                let (kind, size) = match &self.nodes[&ino] {
                    Node::Dir(c) => (FileType::Directory, c.len() as u64),
                    Node::File(d) => (FileType::Regular, d.len() as u64),
                };
                Ok(Out::Stat {
                    kind,
                    size,
                    nlink: self.nlink(ino),
                })
            }
            Op::ReadDir(p) => match &self.nodes[&self.lookup(p)?] {
                Node::File(_) => Err(Errno::NotDir),
                Node::Dir(c) => {
                    let mut names: Vec<String> =
                        [".", ".."].iter().map(|s| s.to_string()).collect();
                    names.extend(c.keys().cloned());
                    names.sort();
                    Ok(Out::Names(names))
                }
            },
        }
    }
}

// ------------------------------------------------------------------------ the real thing

fn apply_real(vfs: &Vfs, root: &Vnode, op: &Op) -> Result<Out, Errno> {
    let b = |p: &String| p.as_bytes().to_vec();
    match op {
        Op::Mkdir(p) => inline(vfs.mkdir(root, &b(p), 0o755)).map(|()| Out::Unit),
        Op::Create(p) => {
            let flags = OpenFlags::WRITE_ONLY | OpenFlags::CREATE | OpenFlags::EXCLUSIVE;
            inline(vfs.open(root, &b(p), flags, 0o644)).map(|_| Out::Unit)
        }
        Op::Write(p, off, len, byte) => {
            let f = inline(vfs.open(root, &b(p), OpenFlags::WRITE_ONLY, 0))?;
            let (r, _) = inline(vfs.pwrite(&f, vec![*byte; *len], *off));
            assert_eq!(r?, *len, "short write");
            Ok(Out::Unit)
        }
        Op::Truncate(p, size) => {
            inline(vfs.truncate(root, &b(p), *size as i64)).map(|()| Out::Unit)
        }
        Op::Unlink(p) => inline(vfs.unlink(root, &b(p))).map(|()| Out::Unit),
        Op::Rmdir(p) => inline(vfs.rmdir(root, &b(p))).map(|()| Out::Unit),
        Op::Rename(a, c, no_replace) => {
            inline(vfs.rename(root, &b(a), root, &b(c), *no_replace)).map(|()| Out::Unit)
        }
        Op::Link(a, c) => inline(vfs.link(root, &b(a), root, &b(c), false)).map(|()| Out::Unit),
        Op::Read(p) => {
            let f = inline(vfs.open(root, &b(p), OpenFlags::READ_ONLY, 0))?;
            let mut data = Vec::new();
            loop {
                let (r, chunk) = inline(vfs.read(&f, Vec::new(), 64 * 1024));
                if r? == 0 {
                    return Ok(Out::Data(data));
                }
                data.extend_from_slice(&chunk);
            }
        }
        Op::Stat(p) => {
            let st = inline(vfs.stat(root, &b(p), false))?;
            let kind = FileType::from_mode(st.st_mode).unwrap();
            Ok(Out::Stat {
                kind,
                size: st.st_size as u64,
                nlink: st.st_nlink,
            })
        }
        Op::ReadDir(p) => {
            let f = inline(vfs.open(root, &b(p), OpenFlags::READ_ONLY | OpenFlags::DIRECTORY, 0))?;
            let mut names = Vec::new();
            loop {
                let batch = inline(vfs.readdir(&f, 2))?;
                if batch.is_empty() {
                    break;
                }
                names.extend(
                    batch
                        .into_iter()
                        .map(|e| String::from_utf8(e.name.into()).unwrap()),
                );
            }
            names.sort();
            Ok(Out::Names(names))
        }
    }
}

/// Everything observable about the tree except access times (which reading changes).
#[derive(Debug, PartialEq, Eq)]
struct Snap {
    path: String,
    ino: u64,
    kind: FileType,
    size: i64,
    nlink: u64,
    mode: u32,
    mtime: abi::Timespec,
    ctime: abi::Timespec,
    data: Vec<u8>,
}

fn snapshot(vfs: &Vfs, root: &Vnode, path: &str, out: &mut Vec<Snap>) {
    let p = if path.is_empty() {
        "/".to_string()
    } else {
        path.to_string()
    };
    let st = inline(vfs.stat(root, p.as_bytes(), false)).unwrap();
    let kind = FileType::from_mode(st.st_mode).unwrap();
    let data = match apply_real(vfs, root, &Op::Read(p.clone())) {
        Ok(Out::Data(d)) => d,
        _ => Vec::new(),
    };
    out.push(Snap {
        path: p.clone(),
        ino: st.st_ino,
        kind,
        size: st.st_size,
        nlink: st.st_nlink,
        mode: st.st_mode,
        mtime: st.st_mtime,
        ctime: st.st_ctime,
        data,
    });
    if kind == FileType::Directory
        && let Ok(Out::Names(names)) = apply_real(vfs, root, &Op::ReadDir(p))
    {
        for n in names.iter().filter(|n| *n != "." && *n != "..") {
            snapshot(vfs, root, &format!("{path}/{n}"), out);
        }
    }
}

/// The model's tree in the same shape (paths, kinds, sizes, link counts, data).
fn model_tree(
    m: &Model,
    ino: usize,
    path: &str,
    out: &mut Vec<(String, FileType, u64, u64, Vec<u8>)>,
) {
    let p = if path.is_empty() {
        "/".to_string()
    } else {
        path.to_string()
    };
    match &m.nodes[&ino] {
        Node::File(d) => out.push((
            p,
            FileType::Regular,
            d.len() as u64,
            m.nlink(ino),
            d.clone(),
        )),
        Node::Dir(c) => {
            out.push((
                p,
                FileType::Directory,
                c.len() as u64,
                m.nlink(ino),
                Vec::new(),
            ));
            for (name, &child) in c {
                model_tree(m, child, &format!("{path}/{name}"), out);
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 384, ..ProptestConfig::default() })]

    #[test]
    fn tmpfs_agrees_with_the_model(ops in prop::collection::vec(op(), 1..60)) {
        let (vfs, tmpfs) = tmpfs_vfs();
        let root = vfs.root();
        let mut model = Model::new();
        for (i, op) in ops.iter().enumerate() {
            let mut before = Vec::new();
            snapshot(&vfs, &root, "", &mut before);
            let expected = model.apply(op);
            let got = apply_real(&vfs, &root, op);
            prop_assert_eq!(&got, &expected, "step {}: {:?}", i, op);
            let mut after = Vec::new();
            snapshot(&vfs, &root, "", &mut after);
            if got.is_err() {
                prop_assert_eq!(&before, &after, "failed step {} {:?} changed the filesystem", i, op);
            }
            let mut want = Vec::new();
            model_tree(&model, ROOT, "", &mut want);
            let have: Vec<_> = after.into_iter().map(|s| (s.path, s.kind, s.size as u64, s.nlink, s.data)).collect();
            prop_assert_eq!(have, want, "trees differ after step {} {:?}", i, op);
            tmpfs.debug_check();
        }
        // Every file the model forgot is also gone from tmpfs (nothing leaks).
        prop_assert_eq!(tmpfs.node_count(), model.nodes.len());
    }
}
