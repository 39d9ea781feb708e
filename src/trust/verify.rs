//! Whole-registry verification: builds the index, then checks every record kind in dependency
//! order (roots, users, grants, cubes, benchmarks, datasets, associations, priorities, results,
//! releases, meta), each kind's records in parallel, and collects every problem.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use crate::model::{self, Kind, Record, Sha256};

use super::cache::SigCache;
use super::index::{FileInfo, Index};
use super::keys::{key_id, raw_key};
use super::sign::{self, SigProblem};
use super::view::View;
use super::{Code, Problem, Rule, Timeline};

/// What to check. Every file and every signature is checked on every run: nothing is skipped
/// because of where it sits in history or what this machine verified before.
#[derive(Debug, Clone, Default)]
pub struct VerifyOptions {
    /// The registry id this clone pinned; a different root v1 is a problem.
    pub expected_registry: Option<Sha256>,
    /// Signature checks already done (a pure memo of the cryptography, keyed on the key, the
    /// signature bytes and the signed bytes); changes speed, never a verdict.
    pub cache: Option<Arc<SigCache>>,
}

/// What every record's check shares: the whole index, the validity found so far, the
/// signature memo, the revoked keys. Checks read it through a [`Ctx`], bounded by their horizon.
pub(super) struct Run<'a> {
    pub ix: &'a Index,
    pub timeline: &'a Timeline,
    /// The records that passed, with when each arrived.
    pub valid: HashMap<String, usize>,
    pub sigs_checked: AtomicUsize,
    pub sigs_cached: AtomicUsize,
    /// The caller's memo, or one for this run alone (a signature several checks look at,
    /// such as a decision's, is computed once).
    pub memo: Arc<SigCache>,
    /// Whether `memo` holds earlier runs' checks (hits are then reported as cached).
    pub memo_is_persistent: bool,
    /// Raw keys revoked by valid revoke-key grants, with the commit index of the earliest
    /// revocation (filled once grants are checked). A key id is a label: the revocation ends
    /// the raw key, under whatever handle or label it shows up again.
    pub revoked: HashMap<[u8; 32], usize>,
    /// How many stages of [`super::policy::STAGES`] are done.
    pub stages_done: usize,
    /// When only what a grown main changed is checked: the number of commits of the main it
    /// grew from, every record of which was valid (see [`super::rules`]).
    pub grown_at: Option<usize>,
}

impl Run<'_> {
    /// Whether `path`, whose check did not run in this pass, stands valid from the main this
    /// one grew from: a record of it whose stage is done and whose check could not have
    /// changed.
    fn passed_before(&self, path: &str) -> bool {
        let Some(at) = self.grown_at else {
            return false;
        };
        match self.ix.files.get(path) {
            Some(f) if f.intro < at && self.ix.records.contains_key(path) => {
                super::policy::stage_of(&f.rp).is_some_and(|s| s < self.stages_done)
            }
            _ => false,
        }
    }
}

/// One record's check: the index as it stood at the record's horizon (see [`View`]), and
/// the run's shared state.
pub(super) struct Ctx<'a> {
    pub ix: View<'a>,
    run: &'a Run<'a>,
}

/// The outcome of checking one record.
#[derive(Default)]
pub(super) struct Verdict {
    pub problems: Vec<Problem>,
    /// What only newer trust rules refuse, on a registry still under older ones.
    pub warnings: Vec<Problem>,
}

impl Verdict {
    pub fn fail(&mut self, path: &str, rule: Rule, msg: impl Into<String>) {
        self.fail_code(path, rule, Code::of_rule(rule), msg);
    }
    pub fn fail_code(&mut self, path: &str, rule: Rule, code: Code, msg: impl Into<String>) {
        self.problems.push(Problem {
            path: path.to_string(),
            rule,
            code,
            message: msg.into(),
            commit: None,
        });
    }
    /// A problem under trust rules 2 and later; a warning where the rules in force at the
    /// file's arrival (`rules`) are older.
    pub fn fail_since_rules2(
        &mut self,
        rules: u32,
        path: &str,
        rule: Rule,
        code: Code,
        msg: impl Into<String>,
    ) {
        if rules >= 2 {
            self.fail_code(path, rule, code, msg);
        } else {
            self.warnings.push(Problem {
                path: path.to_string(),
                rule,
                code,
                message: format!("{} (allowed under trust rules 1)", msg.into()),
                commit: None,
            });
        }
    }
    pub fn ok(&self) -> bool {
        self.problems.is_empty()
    }
}

/// The handles whose signatures on a file count, with the raw Ed25519 key each signed with.
/// Thresholds count people and keys: handles whose raw keys are pairwise distinct.
#[derive(Debug, Default, Clone)]
pub(super) struct Signed(pub BTreeMap<String, [u8; 32]>);

impl Signed {
    pub fn contains(&self, handle: &str) -> bool {
        self.0.contains_key(handle)
    }
    /// Distinct people among the signers `keep` accepts: one vote per handle and per raw key.
    pub fn people(&self, keep: &dyn Fn(&str) -> bool) -> usize {
        self.0
            .iter()
            .filter(|(h, _)| keep(h))
            .map(|(_, k)| k)
            .collect::<HashSet<_>>()
            .len()
    }
}

impl<'a> Ctx<'a> {
    /// The check of `path`, seeing what arrived by its horizon.
    pub fn of(run: &'a Run<'a>, path: &str) -> Ctx<'a> {
        Ctx::at(run, super::view::horizon(run.ix, path))
    }

    /// A check seeing what arrived by commit index `h` (`usize::MAX`: everything).
    pub fn at(run: &'a Run<'a>, h: usize) -> Ctx<'a> {
        Ctx {
            ix: View::at(run.ix, h),
            run,
        }
    }

    /// Whether the registry is verified with its history (not as a bare tree).
    pub fn has_history(&self) -> bool {
        !self.run.timeline.commits.is_empty()
    }

    pub fn is_valid(&self, path: &str) -> bool {
        // A record that passed is visible when it arrived by the horizon (one lookup).
        match self.run.valid.get(path) {
            Some(&intro) => intro <= self.ix.horizon(),
            None => self.ix.files.contains_key(path) && self.run.passed_before(path),
        }
    }

    pub fn intro(&self, path: &str) -> usize {
        self.ix.intro(path)
    }

    /// The trust-rules version in force at commit index `t` (that of the valid root then).
    pub fn rules_at(&self, t: usize) -> u32 {
        self.ix
            .root_at(t, &|p| self.is_valid(p))
            .map(|r| r.rules())
            .unwrap_or(1)
    }

    /// Whether two handles are one person at `t`: the same handle, or the same raw key.
    pub fn same_person(&self, a: &str, b: &str, t: usize) -> bool {
        if a == b {
            return true;
        }
        match (self.key_at(a, t), self.key_at(b, t)) {
            (Some(x), Some(y)) => raw_key(&x) == raw_key(&y),
            _ => false,
        }
    }

    /// The key `handle` signs with at commit index `t`, among valid records: an admin's key
    /// from the root in force, else the newest approved user version's key, unless revoked.
    pub fn key_at(&self, handle: &str, t: usize) -> Option<minisign::PublicKey> {
        let valid = |p: &str| self.is_valid(p);
        if let Some(root) = self.ix.root_at(t, &valid)
            && let Some(a) = root.admins.iter().find(|a| a.handle == handle)
        {
            return minisign::PublicKey::from_base64(&a.minisign).ok();
        }
        let versions = self.ix.users.get(handle)?;
        let (_, user) = versions
            .values()
            .rev()
            .filter(|p| self.is_valid(p) && self.intro(p) <= t)
            .find_map(|p| match self.ix.record(p) {
                Some(Record::User(u)) => Some((p, u)),
                _ => None,
            })?;
        let pk = minisign::PublicKey::from_base64(&user.minisign).ok()?;
        if self.key_revoked(handle, &pk, t) {
            return None;
        }
        Some(pk)
    }

    /// Whether `handle`'s key `pk` is revoked at `t`: by its label for that handle, or as a raw
    /// key revoked for anyone.
    pub fn key_revoked(&self, handle: &str, pk: &minisign::PublicKey, t: usize) -> bool {
        let h = self.ix.horizon();
        if self
            .run
            .revoked
            .get(&raw_key(pk))
            .is_some_and(|&r| r <= t && r <= h)
        {
            return true;
        }
        let key = key_id(pk);
        self.ix
            .grants
            .get(handle)
            .into_iter()
            .flatten()
            .any(|(_, p)| {
                self.is_valid(p)
                    && self.intro(p) <= t
                    && matches!(self.ix.record(p), Some(Record::Grant(g))
                    if g.action == model::GrantAction::RevokeKey && g.key.as_deref() == Some(key.as_str()))
            })
    }

    pub fn has_role(&self, handle: &str, role: model::Role, t: usize) -> bool {
        let mut granted = false;
        for p in self
            .ix
            .grants
            .get(handle)
            .into_iter()
            .flatten()
            .map(|(_, p)| p)
        {
            if !self.is_valid(p) || self.intro(p) > t {
                continue;
            }
            if let Some(Record::Grant(g)) = self.ix.record(p)
                && g.role == Some(role)
            {
                match g.action {
                    model::GrantAction::GrantRole => granted = true,
                    model::GrantAction::RevokeRole => granted = false,
                    model::GrantAction::RevokeKey => {}
                }
            }
        }
        granted
    }

    /// Whether `handle` is a participant (approved user or admin) at `t`.
    pub fn is_known(&self, handle: &str, t: usize) -> bool {
        self.key_at(handle, t).is_some()
    }

    pub fn is_admin(&self, handle: &str, t: usize) -> bool {
        self.ix.is_admin_at(handle, t, &|p| self.is_valid(p))
    }

    /// Checks every signature on `signed`. `key_for(signer, t)` gives the key a signer may sign
    /// with at commit index `t`, or `Err(reason)` when that signer may not sign this file.
    /// Returns the signers whose signatures count, with their keys.
    pub fn signatures(
        &self,
        signed: &str,
        v: &mut Verdict,
        key_for: &dyn Fn(&str, usize) -> Result<minisign::PublicKey, String>,
    ) -> Signed {
        let mut good = Signed::default();
        let Some(info) = self.ix.files.get(signed) else {
            return good;
        };
        for (signer, sig_path) in self.ix.signatures.get(signed).into_iter().flatten() {
            let t = self.intro(sig_path);
            let key = match key_for(signer, t) {
                Ok(k) => k,
                Err(why) => {
                    v.fail(sig_path, Rule::Authority, why);
                    continue;
                }
            };
            if self.check_signature(info, sig_path, signer, &key, v) {
                good.0.insert(signer.clone(), raw_key(&key));
            }
        }
        good
    }

    /// Whether the signature file `sig_path` by `signer` verifies over `info`'s bytes with
    /// exactly `key`, and its trusted comment binds this registry, path, digest, kind, signer
    /// and format. Reports why not into `v`.
    pub fn check_signature(
        &self,
        info: &FileInfo,
        sig_path: &str,
        signer: &str,
        key: &minisign::PublicKey,
        v: &mut Verdict,
    ) -> bool {
        let signed = info.path.as_str();
        let sig_bytes = self.ix.bytes(sig_path).unwrap_or_default();
        let comment = match self.verified_comment(key, sig_bytes, info) {
            Ok(c) => c,
            Err(SigProblem::BadSignature) => {
                v.fail_code(
                    signed,
                    Rule::Signature,
                    Code::BadSignature,
                    format!("signature by {signer} does not match the file's bytes (tampered file or signature)"),
                );
                return false;
            }
            Err(p) => {
                let code = match p {
                    SigProblem::WrongKey { .. } => Code::WrongKey,
                    _ => Code::MalformedSignature,
                };
                v.fail_code(sig_path, Rule::Signature, code, p.to_string());
                return false;
            }
        };
        let kind = info.rp.kind().map(Kind::as_str).unwrap_or("file");
        let registry = if signed == model::build::root(1) {
            Some(info.sha256.clone())
        } else {
            self.ix.registry_id().cloned()
        };
        let mut bad = Vec::new();
        if Some(&comment.registry) != registry.as_ref() {
            bad.push("was made for another registry".to_string());
        }
        if comment.path != signed {
            bad.push(format!(
                "was made for `{}` (a signed file copied to another path?)",
                comment.path
            ));
        }
        if comment.sha256 != info.sha256 {
            bad.push("names other bytes than the file holds".to_string());
        }
        if comment.kind != kind {
            bad.push(format!(
                "was made for a `{}` record, this is a `{kind}`",
                comment.kind
            ));
        }
        if comment.signer != signer {
            bad.push(format!(
                "names signer `{}`, the file name says `{signer}`",
                comment.signer
            ));
        }
        if comment.format != model::FORMAT_VERSION {
            bad.push(format!("names format {}", comment.format));
        }
        if bad.is_empty() {
            return true;
        }
        v.fail_code(
            sig_path,
            Rule::Signature,
            Code::SignatureComment,
            format!("the signature's trusted comment {}", bad.join("; ")),
        );
        false
    }

    /// The signature's trusted comment once its cryptography checks out, through the memo of
    /// earlier checks when there is one.
    fn verified_comment(
        &self,
        key: &minisign::PublicKey,
        sig_bytes: &[u8],
        info: &FileInfo,
    ) -> Result<sign::Comment, SigProblem> {
        let k = SigCache::key(key, sig_bytes, &info.sha256);
        let run = self.run;
        if run.memo.contains(&k)
            && let Ok(c) = sign::trusted_comment(sig_bytes)
        {
            if run.memo_is_persistent {
                run.sigs_cached.fetch_add(1, Ordering::Relaxed);
            }
            return Ok(c);
        }
        run.sigs_checked.fetch_add(1, Ordering::Relaxed);
        // Checked while the index was built (the same triple verified then).
        if let Some(c) = self.ix.early().comment(&k) {
            run.memo.insert(k);
            return Ok(c);
        }
        let comment = sign::verify(key, sig_bytes, &info.bytes)?;
        run.memo.insert(k);
        Ok(comment)
    }

    /// Signed by exactly the one author `who`, with their key valid at signing time.
    pub fn signed_by(&self, path: &str, who: &str, v: &mut Verdict) -> bool {
        let good = self.signatures(path, v, &|signer, t| {
            if signer != who {
                return Err(format!("{signer} may not sign {path}; only {who} does"));
            }
            self.key_at(signer, t).ok_or_else(|| {
                format!("{signer} had no valid key when this signature was merged (not admitted yet, or key revoked)")
            })
        });
        if !good.contains(who) {
            if !self.ix.signatures.contains_key(path) {
                v.fail(
                    path,
                    Rule::Signature,
                    format!("is not signed (needs a signature by {who})"),
                );
            } else if v.ok() {
                v.fail(
                    path,
                    Rule::Signature,
                    format!("has no valid signature by {who}"),
                );
            }
            return false;
        }
        true
    }
}
