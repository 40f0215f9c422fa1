//! Who is in which group for one decision: the policy's `[users.NAME]`, and what the
//! identity provider said about the people involved.
//!
//! The service reads the provider's groups in the transaction that decides (the groups of
//! each person's latest live session) and hands them here with the policy; every rule
//! that asks "is this person in `group:dba`?" asks a [`People`].

use std::collections::{BTreeMap, BTreeSet};

use super::{Member, Policy, Role};
use crate::names::{GroupName, UserName};

/// The countersign groups the identity provider gives people with a live session (what
/// `[[oidc.group_map]]` made of their latest sign-in's groups). Absent: nothing.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IdpGroups(BTreeMap<UserName, BTreeSet<GroupName>>);

/// Nobody has groups from the provider (no `[oidc]`, or nobody signed in).
static NO_IDP_GROUPS: IdpGroups = IdpGroups(BTreeMap::new());

impl IdpGroups {
    /// Records that `user` has a live session giving `groups` (possibly none: a person the
    /// provider vouches for who is in no mapped group still exists).
    pub fn insert(&mut self, user: UserName, groups: BTreeSet<GroupName>) {
        self.0.insert(user, groups);
    }

    /// The provider's groups of `user`, if they have a live session.
    pub fn get(&self, user: &UserName) -> Option<&BTreeSet<GroupName>> {
        self.0.get(user)
    }
}

/// The people a decision is about: the policy's users, each with their TOML groups, plus
/// the groups the identity provider gives them.
#[derive(Debug, Clone, Copy)]
pub struct People<'a> {
    /// The policy in force.
    pub policy: &'a Policy,
    idp: &'a IdpGroups,
}

impl<'a> People<'a> {
    /// `policy`'s users with the provider's groups of the people in `idp`.
    pub fn new(policy: &'a Policy, idp: &'a IdpGroups) -> Self {
        People { policy, idp }
    }

    /// Only the policy's users (loading the config, or no `[oidc]`).
    pub fn of_policy(policy: &'a Policy) -> Self {
        People {
            policy,
            idp: &NO_IDP_GROUPS,
        }
    }

    /// Whether `user` is someone: defined in `[users]`, or signed in through the provider
    /// with a live session. Nobody else requests, approves or counts.
    pub fn is_known(&self, user: &UserName) -> bool {
        self.policy.users.contains_key(user) || self.idp.get(user).is_some()
    }

    /// Whether `user` is in `group`, by the TOML or by the provider.
    pub fn in_group(&self, user: &UserName, group: &GroupName) -> bool {
        self.policy
            .users
            .get(user)
            .is_some_and(|u| u.groups.contains(group))
            || self.idp.get(user).is_some_and(|g| g.contains(group))
    }

    /// Every group `user` is in, TOML and provider merged, sorted.
    pub fn groups_of(&self, user: &UserName) -> BTreeSet<&GroupName> {
        let toml = self.policy.users.get(user).map(|u| &u.groups);
        toml.into_iter()
            .chain(self.idp.get(user))
            .flatten()
            .collect()
    }

    /// Whether `user` is named by `member`.
    pub fn is_member(&self, user: &UserName, member: &Member) -> bool {
        match member {
            Member::User(u) => u == user,
            Member::Group(g) => self.in_group(user, g),
        }
    }

    /// Whether `user` is named by any of `members`.
    pub fn is_any_member(&self, user: &UserName, members: &[Member]) -> bool {
        members.iter().any(|m| self.is_member(user, m))
    }

    /// Whether `user` is a service account (`bot = true` in the config).
    pub fn is_bot(&self, user: &UserName) -> bool {
        self.policy.users.get(user).is_some_and(|u| u.bot)
    }

    /// Whether `user` is named by some approval step of `role` (may approve, or deny, its
    /// requests; the requester's own still never counts). A service account never is,
    /// whatever groups it is in.
    pub fn approves_for(&self, user: &UserName, role: &Role) -> bool {
        !self.is_bot(user)
            && role
                .steps
                .iter()
                .any(|s| self.is_any_member(user, &s.approvers))
    }

    /// Whether `user`, someone known, may approve or deny requests for `role`.
    pub fn may_decide(&self, user: &UserName, role: &Role) -> bool {
        self.is_known(user) && self.approves_for(user, role)
    }

    /// Whether `user` is admin (only `[users.NAME] admin = true` makes one: the provider's
    /// groups never do).
    pub fn is_admin(&self, user: &UserName) -> bool {
        self.policy.is_admin(user)
    }
}
