//! How many partitions each live replica should own, and what one replica does about
//! it at each tick. Pure, so every case is a unit test.
//!
//! Replicas sort their ids; the one at rank `r` of `R` aims for `P / R` partitions, plus
//! one when `r < P % R`, so the targets add up to exactly `P`. A replica below its
//! target claims free partitions (its "own" residues `p % R == r` first, so replicas
//! starting together rarely race for the same key); a replica above it releases one
//! partition per tick, and only when no partition is free (otherwise the others take
//! the free ones first).

use std::collections::BTreeSet;

/// What one replica does in one tick.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Plan {
    /// Free partitions to try to claim, best first.
    pub claim: Vec<u32>,
    /// A partition to hand over.
    pub release: Option<u32>,
}

/// The partitions the replica at `rank` of `replicas` should own.
pub fn target(partitions: u32, replicas: usize, rank: usize) -> usize {
    let partitions = partitions as usize;
    let replicas = replicas.max(1);
    partitions / replicas + usize::from(rank < partitions % replicas)
}

/// The plan for replica `me`, which owns `mine`, among the `live` replicas (`me`
/// counted even if its own heartbeat is not visible yet), when `taken` partitions
/// hold a lease of any replica (`mine` included).
pub fn plan(partitions: u32, me: &str, live: &BTreeSet<String>, mine: &BTreeSet<u32>, taken: &BTreeSet<u32>) -> Plan {
    let mut replicas = live.clone();
    replicas.insert(me.to_owned());
    let rank = replicas.iter().position(|id| id == me).unwrap_or(0);
    let count = replicas.len();
    let goal = target(partitions, count, rank);
    let free: Vec<u32> = (0..partitions).filter(|p| !taken.contains(p) && !mine.contains(p)).collect();
    if mine.len() < goal {
        let (own_residue, others): (Vec<u32>, Vec<u32>) = free.into_iter().partition(|p| *p as usize % count == rank);
        let claim = own_residue.into_iter().chain(others).take(goal - mine.len()).collect();
        return Plan { claim, release: None };
    }
    if mine.len() > goal && free.is_empty() {
        return Plan { claim: Vec::new(), release: mine.iter().next_back().copied() };
    }
    Plan::default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(names: &[&str]) -> BTreeSet<String> {
        names.iter().map(|name| (*name).to_owned()).collect()
    }

    fn set(partitions: impl IntoIterator<Item = u32>) -> BTreeSet<u32> {
        partitions.into_iter().collect()
    }

    #[test]
    fn targets_add_up_to_the_partition_count() {
        for partitions in [1, 2, 7, 16, 64] {
            for replicas in 1..=20 {
                let total: usize = (0..replicas).map(|rank| target(partitions, replicas, rank)).sum();
                assert_eq!(total, partitions as usize, "{partitions} over {replicas}");
            }
        }
        assert_eq!(target(16, 3, 0), 6);
        assert_eq!(target(16, 3, 2), 5);
        assert_eq!(target(2, 3, 2), 0);
    }

    #[test]
    fn a_lone_replica_claims_everything() {
        let plan = plan(4, "a", &ids(&[]), &set([]), &set([]));
        assert_eq!(plan, Plan { claim: vec![0, 1, 2, 3], release: None });
    }

    #[test]
    fn replicas_prefer_their_own_residues() {
        let live = ids(&["a", "b"]);
        assert_eq!(plan(4, "a", &live, &set([]), &set([])).claim, vec![0, 2]);
        assert_eq!(plan(4, "b", &live, &set([]), &set([])).claim, vec![1, 3]);
    }

    #[test]
    fn taken_partitions_are_not_claimed() {
        let live = ids(&["a", "b"]);
        let plan = plan(4, "a", &live, &set([]), &set([0, 2]));
        assert_eq!(plan.claim, vec![1, 3]);
    }

    #[test]
    fn a_replica_over_its_share_releases_one_when_nothing_is_free() {
        let live = ids(&["a", "b", "c"]);
        let mine = set(0..8);
        let taken = set(0..16);
        assert_eq!(plan(16, "a", &live, &mine, &taken), Plan { claim: vec![], release: Some(7) });
    }

    #[test]
    fn no_release_while_partitions_are_free() {
        let live = ids(&["a", "b"]);
        let plan = plan(16, "a", &live, &set(0..10), &set(0..12));
        assert_eq!(plan, Plan::default());
    }

    #[test]
    fn a_replica_at_its_share_does_nothing() {
        let live = ids(&["a", "b"]);
        assert_eq!(plan(16, "b", &live, &set(8..16), &set(0..16)), Plan::default());
    }

    #[test]
    fn the_survivor_takes_a_dead_replicas_partitions() {
        // "b" stopped renewing: its heartbeat and leases have expired.
        let plan = plan(4, "a", &ids(&["a"]), &set([0, 2]), &set([0, 2]));
        assert_eq!(plan.claim, vec![1, 3]);
    }

    #[test]
    fn me_counts_before_my_heartbeat_is_visible() {
        let plan = plan(4, "b", &ids(&["a"]), &set([]), &set([0, 1, 2, 3]));
        assert_eq!(plan, Plan::default());
        assert_eq!(super::plan(4, "a", &ids(&["a", "b"]), &set([0, 1, 2, 3]), &set([0, 1, 2, 3])).release, Some(3));
    }
}
