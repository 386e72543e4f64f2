//! hal: Damselfly's hardware abstraction layer (skeleton).
#![no_std]
