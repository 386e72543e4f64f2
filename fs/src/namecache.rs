// SPDX-License-Identifier: MIT OR Apache-2.0
//! The namecache: (mount, directory, name) to inode, with negative entries.
//!
//! It sits in front of every filesystem, as DragonFly's namecache sits in front of VFS: a
//! walk that hits here sends no message at all.
//!
//! Rules:
//! 1. **Keys are per filesystem.** `(mount id, directory inode, name)`; mount crossing is
//!    done by the VFS after the cache answers, from the mount table.
//! 2. **Inode numbers are never reused** by a filesystem during a mount (tmpfs and devfs
//!    guarantee it), so an entry can never point at a different file that happens to get
//!    the same number.
//! 3. **Invalidate after the change.** The VFS invalidates the names an operation changed
//!    (create, link, symlink, mkdir: the new name, removing its negative entry; unlink,
//!    rmdir: the old name; rename: both names, and `..` of a moved directory) after the
//!    filesystem replied. Invalidation bumps the generation.
//! 4. **Fill only if nothing changed meanwhile.** A filler reads the generation *before*
//!    asking the filesystem and inserts only if it is unchanged when it takes the lock to
//!    insert. A lookup that raced with an invalidating operation may have seen the old
//!    state, so its answer is dropped rather than cached. Together with rule 3 this means
//!    a stale entry is never returned once the changing operation has returned.
//! 5. **Bounded.** When full, the cache is emptied (cheap, correct, and rare at our sizes).

use alloc::boxed::Box;
use core::hash::{Hash, Hasher};

use abi::FileType;
use hashbrown::{Equivalent, HashMap};

use crate::{
    proto::Ino,
    sync::{AtomicU64, Ordering, RwLock},
};

/// Default number of entries kept.
pub const DEFAULT_CAPACITY: usize = 64 * 1024;

/// What the cache knows about a name.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CachedName {
    /// The name exists and refers to this node.
    Positive {
        /// The node's inode.
        ino: Ino,
        /// The node's type (the walker needs to know directories and symlinks).
        kind: FileType,
    },
    /// The name does not exist.
    Negative,
}

#[derive(PartialEq, Eq)]
struct Key {
    mount: u64,
    dir: Ino,
    name: Box<[u8]>,
}

impl Hash for Key {
    fn hash<H: Hasher>(&self, state: &mut H) {
        KeyRef {
            mount: self.mount,
            dir: self.dir,
            name: &self.name,
        }
        .hash(state)
    }
}

struct KeyRef<'a> {
    mount: u64,
    dir: Ino,
    name: &'a [u8],
}

impl Hash for KeyRef<'_> {
    fn hash<H: Hasher>(&self, state: &mut H) {
        state.write_u64(self.mount);
        state.write_u64(self.dir);
        state.write(self.name);
    }
}

impl Equivalent<Key> for KeyRef<'_> {
    fn equivalent(&self, key: &Key) -> bool {
        self.mount == key.mount && self.dir == key.dir && *self.name == *key.name
    }
}

/// Slow-path counters. Hits are deliberately not counted: a shared counter bumped on every
/// cached lookup cost 15% of a 5-component walk on one CPU and bounces a cache line
/// between CPUs (measured with `cargo bench -p fs -- lookup`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CacheStats {
    /// Lookups the cache could not answer.
    pub misses: u64,
    /// Answers dropped by rule 4 (an invalidation raced with the lookup).
    pub dropped_fills: u64,
}

/// The namecache.
pub struct NameCache {
    map: RwLock<HashMap<Key, CachedName>>,
    generation: AtomicU64,
    capacity: usize,
    misses: AtomicU64,
    dropped_fills: AtomicU64,
}

impl NameCache {
    /// An empty cache holding at most `capacity` entries.
    pub fn new(capacity: usize) -> NameCache {
        NameCache {
            map: RwLock::new(HashMap::new()),
            generation: AtomicU64::new(0),
            capacity: capacity.max(1),
            misses: AtomicU64::new(0),
            dropped_fills: AtomicU64::new(0),
        }
    }

    /// The cached answer for `name` in `dir` of `mount`, if any.
    pub fn get(&self, mount: u64, dir: Ino, name: &[u8]) -> Option<CachedName> {
        let found = self.map.read().get(&KeyRef { mount, dir, name }).copied();
        if found.is_none() {
            self.misses.fetch_add(1, Ordering::Relaxed);
        }
        found
    }

    /// The generation to pass to [`NameCache::insert`]: read it before asking the
    /// filesystem (rule 4).
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// Caches an answer obtained after reading `generation`; returns false (and caches
    /// nothing) if an invalidation happened since.
    pub fn insert(
        &self,
        generation: u64,
        mount: u64,
        dir: Ino,
        name: &[u8],
        entry: CachedName,
    ) -> bool {
        let mut map = self.map.write();
        if self.generation.load(Ordering::Acquire) != generation {
            self.dropped_fills.fetch_add(1, Ordering::Relaxed);
            return false;
        }
        if map.len() >= self.capacity {
            map.clear();
        }
        map.insert(
            Key {
                mount,
                dir,
                name: name.into(),
            },
            entry,
        );
        true
    }

    /// Forgets `name` in `dir` (rule 3).
    pub fn invalidate(&self, mount: u64, dir: Ino, name: &[u8]) {
        let mut map = self.map.write();
        map.remove(&KeyRef { mount, dir, name });
        self.generation.fetch_add(1, Ordering::Release);
    }

    /// Forgets every entry of `mount` (at unmount).
    pub fn purge_mount(&self, mount: u64) {
        let mut map = self.map.write();
        map.retain(|k, _| k.mount != mount);
        self.generation.fetch_add(1, Ordering::Release);
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.map.read().len()
    }

    /// True if there are no entries.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The counters so far.
    pub fn stats(&self) -> CacheStats {
        CacheStats {
            misses: self.misses.load(Ordering::Relaxed),
            dropped_fills: self.dropped_fills.load(Ordering::Relaxed),
        }
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    const FILE: CachedName = CachedName::Positive {
        ino: 7,
        kind: FileType::Regular,
    };

    #[test]
    fn insert_then_get() {
        let c = NameCache::new(16);
        assert_eq!(c.get(1, 2, b"a"), None);
        assert!(c.insert(c.generation(), 1, 2, b"a", FILE));
        assert_eq!(c.get(1, 2, b"a"), Some(FILE));
        assert_eq!(c.get(1, 3, b"a"), None);
        assert_eq!(c.get(2, 2, b"a"), None);
        assert_eq!(c.stats().misses, 3, "the three `None` answers");
    }

    #[test]
    fn fill_is_dropped_after_a_racing_invalidation() {
        let c = NameCache::new(16);
        let seen = c.generation();
        c.invalidate(1, 2, b"a");
        assert!(!c.insert(seen, 1, 2, b"a", FILE));
        assert_eq!(c.get(1, 2, b"a"), None);
        assert_eq!(c.stats().dropped_fills, 1);
    }

    #[test]
    fn negative_entries_and_invalidation() {
        let c = NameCache::new(16);
        c.insert(c.generation(), 1, 2, b"a", CachedName::Negative);
        assert_eq!(c.get(1, 2, b"a"), Some(CachedName::Negative));
        c.invalidate(1, 2, b"a");
        assert_eq!(c.get(1, 2, b"a"), None);
    }

    #[test]
    fn full_cache_is_emptied_not_overgrown() {
        let c = NameCache::new(4);
        for i in 0..10u8 {
            c.insert(c.generation(), 1, 2, &[b'a' + i], FILE);
            assert!(c.len() <= 4);
        }
        assert_eq!(c.get(1, 2, b"j"), Some(FILE));
    }

    #[test]
    fn purge_mount_keeps_other_mounts() {
        let c = NameCache::new(16);
        c.insert(c.generation(), 1, 2, b"a", FILE);
        c.insert(c.generation(), 5, 2, b"a", FILE);
        c.purge_mount(1);
        assert_eq!(c.get(1, 2, b"a"), None);
        assert_eq!(c.get(5, 2, b"a"), Some(FILE));
    }
}

#[cfg(all(test, loom))]
mod loom_tests {
    use loom::{sync::Arc, thread};

    use super::*;
    use crate::sync::AtomicBool;

    const FILE: CachedName = CachedName::Positive {
        ino: 7,
        kind: FileType::Regular,
    };

    /// Rule 4: a lookup that read the filesystem before an unlink must not leave a positive
    /// entry behind once the unlink (change, then invalidate) is done, in any interleaving.
    #[test]
    fn loom_a_fill_racing_an_unlink_never_leaves_a_stale_entry() {
        loom::model(|| {
            let cache = Arc::new(NameCache::new(8));
            let exists = Arc::new(AtomicBool::new(true)); // the filesystem's state
            let filler = thread::spawn({
                let (cache, exists) = (cache.clone(), exists.clone());
                move || {
                    if cache.get(1, 2, b"a").is_none() {
                        let generation = cache.generation();
                        let answer = if exists.load(Ordering::SeqCst) {
                            FILE
                        } else {
                            CachedName::Negative
                        };
                        cache.insert(generation, 1, 2, b"a", answer);
                    }
                }
            });
            exists.store(false, Ordering::SeqCst); // unlink in the filesystem...
            cache.invalidate(1, 2, b"a"); // ...then in the cache
            filler.join().unwrap();
            assert_ne!(cache.get(1, 2, b"a"), Some(FILE), "stale positive entry");
        });
    }

    /// The mirror case: a negative answer racing a create.
    #[test]
    fn loom_a_fill_racing_a_create_never_leaves_a_stale_negative_entry() {
        loom::model(|| {
            let cache = Arc::new(NameCache::new(8));
            let exists = Arc::new(AtomicBool::new(false));
            let filler = thread::spawn({
                let (cache, exists) = (cache.clone(), exists.clone());
                move || {
                    let generation = cache.generation();
                    let answer = if exists.load(Ordering::SeqCst) {
                        FILE
                    } else {
                        CachedName::Negative
                    };
                    cache.insert(generation, 1, 2, b"a", answer);
                }
            });
            exists.store(true, Ordering::SeqCst);
            cache.invalidate(1, 2, b"a");
            filler.join().unwrap();
            assert_ne!(
                cache.get(1, 2, b"a"),
                Some(CachedName::Negative),
                "stale negative entry"
            );
        });
    }
}
