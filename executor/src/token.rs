//! Serializing tokens (DragonFly `lwkt_token`), carried to futures.
//!
//! A token serializes tasks **only while they are being polled**. A task's token set is
//! fixed at spawn (`TaskBuilder::token`, `spawn_with_tokens`) and may be replaced from
//! inside a poll with `set_task_tokens` (effective from the next poll). Before each poll
//! the executor acquires the whole set, all or nothing; when the poll returns (Ready or
//! Pending) it releases it. A task whose tokens are busy is passed over: it stays runnable
//! at the tail of its level and is retried later, never spun on. Because nothing is ever
//! waited for while a token is held, cyclic acquisition orders cannot deadlock; after
//! `SORTED_AFTER_MISSES` consecutive misses the set is sorted by token address, the
//! ordered fallback of DragonFly's `lwkt_getalltokens`, so competing sets stop
//! colliding in opposite orders. As in DragonFly, state protected by a token must be
//! revalidated after every `.await`: another task may have held the token in between.
//!
//! Shared holders exclude exclusive ones and vice versa. Like DragonFly (whose EXCLREQ is
//! "XXX not honoured" for shared requests), a stream of shared holders can starve an
//! exclusive one.
//!
//! Pool tokens: `pool_token(ptr)` hashes an address onto one of `POOL_TOKENS` (4001)
//! static tokens, DragonFly's `lwkt_getpooltoken`.

use alloc::vec::Vec;

use crate::sync::{Arc, AtomicU64, AtomicUsize, Ordering};

const EXCLUSIVE: usize = 1;
const SHARED_ONE: usize = 4;

/// Consecutive misses after which a task's token set is acquired in address order.
pub const SORTED_AFTER_MISSES: u32 = 10;

/// A serializing token. See the module docs.
#[derive(Debug)]
pub struct Token {
    /// Bit 0: held exclusively. Bits 2..: number of shared holders (DragonFly `t_count`).
    count: AtomicUsize,
    /// Failed acquisitions (DragonFly `t_collisions`).
    collisions: AtomicU64,
}

impl Default for Token {
    fn default() -> Self {
        Self::new()
    }
}

impl Token {
    /// A free token.
    #[cfg(not(loom))]
    pub const fn new() -> Self {
        Self {
            count: AtomicUsize::new(0),
            collisions: AtomicU64::new(0),
        }
    }

    /// A free token.
    #[cfg(loom)]
    pub fn new() -> Self {
        Self {
            count: AtomicUsize::new(0),
            collisions: AtomicU64::new(0),
        }
    }

    fn try_exclusive(&self) -> bool {
        let ok = self
            .count
            .compare_exchange(0, EXCLUSIVE, Ordering::Acquire, Ordering::Relaxed)
            .is_ok();
        if !ok {
            self.collisions.fetch_add(1, Ordering::Relaxed);
        }
        ok
    }

    fn try_shared(&self) -> bool {
        let prev = self.count.fetch_add(SHARED_ONE, Ordering::Acquire);
        if prev & EXCLUSIVE != 0 {
            self.count.fetch_sub(SHARED_ONE, Ordering::Relaxed);
            self.collisions.fetch_add(1, Ordering::Relaxed);
            return false;
        }
        true
    }

    fn release(&self, mode: TokenMode) {
        let amount = match mode {
            TokenMode::Exclusive => EXCLUSIVE,
            TokenMode::Shared => SHARED_ONE,
        };
        let prev = self.count.fetch_sub(amount, Ordering::Release);
        debug_assert!(
            prev >= amount,
            "executor: token released more often than acquired"
        );
    }

    /// True while some task holds this token exclusively.
    pub fn is_held_exclusive(&self) -> bool {
        self.count.load(Ordering::Acquire) & EXCLUSIVE != 0
    }

    /// Number of failed acquisitions so far.
    pub fn collisions(&self) -> u64 {
        self.collisions.load(Ordering::Relaxed)
    }
}

/// How a task holds a token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenMode {
    /// Alone (DragonFly `lwkt_gettoken`).
    Exclusive,
    /// With other shared holders (DragonFly `lwkt_gettoken_shared`).
    Shared,
}

#[derive(Debug, Clone)]
enum TokenPtr {
    Static(&'static Token),
    Counted(Arc<Token>),
}

/// A token and the mode a task wants it in: one entry of a task's token set.
#[derive(Debug, Clone)]
pub struct TokenRef {
    token: TokenPtr,
    mode: TokenMode,
}

impl TokenRef {
    /// `token`, held exclusively.
    pub fn exclusive(token: &'static Token) -> Self {
        Self {
            token: TokenPtr::Static(token),
            mode: TokenMode::Exclusive,
        }
    }

    /// `token`, held shared.
    pub fn shared(token: &'static Token) -> Self {
        Self {
            token: TokenPtr::Static(token),
            mode: TokenMode::Shared,
        }
    }

    /// A reference-counted token (one embedded in an object), held exclusively.
    pub fn exclusive_arc(token: Arc<Token>) -> Self {
        Self {
            token: TokenPtr::Counted(token),
            mode: TokenMode::Exclusive,
        }
    }

    /// A reference-counted token, held shared.
    pub fn shared_arc(token: Arc<Token>) -> Self {
        Self {
            token: TokenPtr::Counted(token),
            mode: TokenMode::Shared,
        }
    }

    /// The mode this entry asks for.
    pub fn mode(&self) -> TokenMode {
        self.mode
    }

    fn token(&self) -> &Token {
        match &self.token {
            TokenPtr::Static(t) => t,
            TokenPtr::Counted(t) => t,
        }
    }

    fn addr(&self) -> usize {
        self.token() as *const Token as usize
    }

    fn try_acquire(&self) -> bool {
        match self.mode {
            TokenMode::Exclusive => self.token().try_exclusive(),
            TokenMode::Shared => self.token().try_shared(),
        }
    }

    fn release(&self) {
        self.token().release(self.mode);
    }
}

/// A task's token set and its acquisition state (executor-private, lives in the task).
#[derive(Debug, Default)]
pub(crate) struct TokenSet {
    refs: Vec<TokenRef>,
    held: bool,
    misses: u32,
    sorted: bool,
}

impl TokenSet {
    /// Builds a set, merging duplicates (one entry per token; exclusive wins).
    pub(crate) fn new(refs: Vec<TokenRef>) -> Self {
        let mut set = Self::default();
        set.replace(refs);
        set
    }

    /// Replaces the set. Must not be called while it is held.
    pub(crate) fn replace(&mut self, refs: Vec<TokenRef>) {
        debug_assert!(!self.held, "executor: token set replaced while held");
        let mut merged: Vec<TokenRef> = Vec::with_capacity(refs.len());
        for r in refs {
            match merged.iter_mut().find(|m| m.addr() == r.addr()) {
                Some(m) => {
                    if r.mode == TokenMode::Exclusive {
                        m.mode = TokenMode::Exclusive;
                    }
                }
                None => merged.push(r),
            }
        }
        self.refs = merged;
        self.misses = 0;
        self.sorted = false;
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.refs.is_empty()
    }

    /// All or nothing. True if every token is now held.
    pub(crate) fn try_acquire_all(&mut self) -> bool {
        debug_assert!(!self.held, "executor: token set acquired twice");
        if !self.sorted && self.misses >= SORTED_AFTER_MISSES {
            self.refs.sort_by_key(TokenRef::addr);
            self.sorted = true;
        }
        for (i, r) in self.refs.iter().enumerate() {
            if !r.try_acquire() {
                for taken in self.refs[..i].iter().rev() {
                    taken.release();
                }
                self.misses = self.misses.saturating_add(1);
                return false;
            }
        }
        self.misses = 0;
        self.held = true;
        true
    }

    /// Releases the set in reverse order (DragonFly asserts reverse-order release).
    pub(crate) fn release_all(&mut self) {
        if self.held {
            for r in self.refs.iter().rev() {
                r.release();
            }
            self.held = false;
        }
    }
}

/// Number of pool tokens (DragonFly `LWKT_POOLTOKENS`, a prime).
pub const POOL_TOKENS: usize = 4001;

#[cfg(not(loom))]
static POOL: [Token; POOL_TOKENS] = [const { Token::new() }; POOL_TOKENS];

/// The pool token for an address (DragonFly `lwkt_getpooltoken`): type-stable
/// serialization of an object without embedding a token in it.
#[cfg(not(loom))]
pub fn pool_token<T: ?Sized>(object: *const T) -> &'static Token {
    let addr = object.cast::<u8>() as usize;
    &POOL[(addr ^ (addr >> 10)) % POOL_TOKENS]
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn exclusive_excludes_shared_and_exclusive() {
        let t: &'static Token = alloc::boxed::Box::leak(alloc::boxed::Box::new(Token::new()));
        let mut a = TokenSet::new(alloc::vec![TokenRef::exclusive(t)]);
        let mut b = TokenSet::new(alloc::vec![TokenRef::shared(t)]);
        let mut c = TokenSet::new(alloc::vec![TokenRef::exclusive(t)]);
        assert!(a.try_acquire_all());
        assert!(!b.try_acquire_all());
        assert!(!c.try_acquire_all());
        a.release_all();
        assert!(b.try_acquire_all());
        assert!(!c.try_acquire_all());
        let mut d = TokenSet::new(alloc::vec![TokenRef::shared(t)]);
        assert!(d.try_acquire_all(), "two shared holders coexist");
        b.release_all();
        d.release_all();
        assert!(c.try_acquire_all());
        assert_eq!(t.collisions(), 3);
    }

    #[test]
    fn all_or_nothing_releases_the_prefix_on_failure() {
        let t1: &'static Token = alloc::boxed::Box::leak(alloc::boxed::Box::new(Token::new()));
        let t2: &'static Token = alloc::boxed::Box::leak(alloc::boxed::Box::new(Token::new()));
        let mut holder = TokenSet::new(alloc::vec![TokenRef::exclusive(t2)]);
        assert!(holder.try_acquire_all());
        let mut both = TokenSet::new(alloc::vec![
            TokenRef::exclusive(t1),
            TokenRef::exclusive(t2)
        ]);
        assert!(!both.try_acquire_all());
        assert!(!t1.is_held_exclusive(), "t1 was given back after t2 failed");
        holder.release_all();
        assert!(both.try_acquire_all());
        assert!(t1.is_held_exclusive() && t2.is_held_exclusive());
    }

    #[test]
    fn duplicates_merge_and_exclusive_wins() {
        let t: &'static Token = alloc::boxed::Box::leak(alloc::boxed::Box::new(Token::new()));
        let mut set = TokenSet::new(alloc::vec![TokenRef::shared(t), TokenRef::exclusive(t)]);
        assert_eq!(set.refs.len(), 1);
        assert!(set.try_acquire_all(), "a set never collides with itself");
        assert!(t.is_held_exclusive());
    }

    #[test]
    fn misses_switch_to_address_order() {
        let t1: &'static Token = alloc::boxed::Box::leak(alloc::boxed::Box::new(Token::new()));
        let t2: &'static Token = alloc::boxed::Box::leak(alloc::boxed::Box::new(Token::new()));
        let (lo, hi) = if (t1 as *const Token) < (t2 as *const Token) {
            (t1, t2)
        } else {
            (t2, t1)
        };
        let mut blocker = TokenSet::new(alloc::vec![TokenRef::exclusive(lo)]);
        assert!(blocker.try_acquire_all());
        let mut set = TokenSet::new(alloc::vec![
            TokenRef::exclusive(hi),
            TokenRef::exclusive(lo)
        ]);
        for _ in 0..SORTED_AFTER_MISSES {
            assert!(!set.try_acquire_all());
        }
        assert!(!set.try_acquire_all());
        assert!(set.sorted);
        assert_eq!(set.refs[0].addr(), lo as *const Token as usize);
        blocker.release_all();
        assert!(set.try_acquire_all());
    }

    #[test]
    fn pool_token_is_stable_per_address() {
        let x = 5u64;
        let y = [0u8; 64];
        assert!(core::ptr::eq(pool_token(&x), pool_token(&x)));
        let _ = pool_token(&y);
    }
}
