//! Sets the range check of `audit verify` asks about but cannot afford to hold exactly,
//! each built from rows whose hashes the range checked (never from an index, which no
//! hash covers and someone who can write the database file could edit).
//!
//! [`Sieve`]: a Bloom filter of request ids. "No" is certain; "maybe" is settled by
//! reading the rows again. Hand-written: a bit vector and four probes, less than a crate.
//! [`Tally`]: a keyed sum over events, to compare two reads of the same events.

use std::hash::{BuildHasher, RandomState};

/// Bits per event of the range (about three per request: few "maybe"s for nothing).
const BITS_PER_EVENT: u64 = 16;
/// At most 8 MiB per range, whatever its length ("maybe" grows more frequent beyond).
const MAX_BITS: u64 = 1 << 26;
const PROBES: u64 = 4;

/// Request ids, as a Bloom filter sized for a range of `events` events.
pub(super) struct Sieve {
    bits: Vec<u64>,
    /// Bit count minus one (a power of two).
    mask: u64,
    keys: RandomState,
}

impl Sieve {
    /// A filter for a range of `events` events; `None` holds nothing and answers "no".
    pub(super) fn new(events: Option<u64>) -> Sieve {
        let bits = events.map_or(0, |n| {
            n.saturating_mul(BITS_PER_EVENT)
                .clamp(64, MAX_BITS)
                .next_power_of_two()
        });
        Sieve {
            bits: vec![0; (bits / 64) as usize],
            mask: bits.saturating_sub(1),
            keys: RandomState::new(),
        }
    }

    fn probes(&self, id: &str) -> impl Iterator<Item = u64> + use<> {
        let h = self.keys.hash_one(id);
        let step = h.rotate_left(32) | 1;
        let mask = self.mask;
        (0..PROBES).map(move |i| h.wrapping_add(i.wrapping_mul(step)) & mask)
    }

    pub(super) fn insert(&mut self, id: &str) {
        if self.bits.is_empty() {
            return;
        }
        for b in self.probes(id) {
            self.bits[(b / 64) as usize] |= 1 << (b % 64);
        }
    }

    /// Whether `id` may have been inserted (`false`: it certainly was not).
    pub(super) fn may_hold(&self, id: &str) -> bool {
        !self.bits.is_empty()
            && self
                .probes(id)
                .all(|b| self.bits[(b / 64) as usize] & (1 << (b % 64)) != 0)
    }
}

/// How many events, and a sum of their hashes (sequence number, action, detail, time)
/// under a key chosen per verification: two reads that saw the same events agree, and a
/// read that missed, added or altered one disagrees (but for a chance of 2^-64).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(super) struct Tally {
    count: u64,
    sum: u64,
}

impl Tally {
    /// Counts one host event, by all that the host check reads of it.
    pub(super) fn add(&mut self, keys: &RandomState, event: (i64, &str, &str, &str)) {
        self.count += 1;
        self.sum = self.sum.wrapping_add(keys.hash_one(event));
    }

    pub(super) fn join(self, other: Tally) -> Tally {
        Tally {
            count: self.count + other.count,
            sum: self.sum.wrapping_add(other.sum),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sieve_never_forgets_and_rarely_imagines() {
        let mut s = Sieve::new(Some(30_000));
        let ids: Vec<String> = (0..10_000).map(|i| format!("r-{i:012}")).collect();
        for id in &ids {
            s.insert(id);
        }
        assert!(ids.iter().all(|id| s.may_hold(id)));
        let imagined = (0..10_000)
            .filter(|i| s.may_hold(&format!("x-{i:012}")))
            .count();
        assert!(imagined < 20, "{imagined} of 10,000 never inserted");
        assert!(!Sieve::new(None).may_hold("r-000000000001"));
    }

    #[test]
    fn tallies_of_the_same_events_agree_and_of_others_do_not() {
        let keys = RandomState::new();
        let tally = |seqs: &[i64]| {
            let mut t = Tally::default();
            for &s in seqs {
                t.add(&keys, (s, "host.enrolled", "{}", "t"));
            }
            t
        };
        assert_eq!(tally(&[2, 5, 9]), tally(&[2]).join(tally(&[5, 9])));
        assert_ne!(tally(&[2, 5]), tally(&[3, 4]));
        assert_ne!(tally(&[2, 5]), tally(&[2, 5, 5]));
        let mut altered = tally(&[2]);
        altered.add(&keys, (5, "host.enrolled", "{\"x\":1}", "t"));
        assert_ne!(tally(&[2, 5]), altered);
    }
}
