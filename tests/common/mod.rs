//! Shared test harnesses: an in-process pair of IKE SAs with a virtual clock ([`pair`]), network
//! namespaces ([`netns`]), a strongSwan charon in one of them ([`strongswan`]) and a UDP driver that runs
//! an `IkeSa` over real sockets ([`driver`]), IPv6 labs ([`ipv6`]). Each test file uses only some of them.
#![allow(dead_code)]

pub mod configs;
pub mod driver;
pub mod impair;
pub mod ipv6;
pub mod lab;
pub mod netns;
pub mod pair;
pub mod pki;
pub mod strongswan;
pub mod tempdir;
pub mod two_aws;
