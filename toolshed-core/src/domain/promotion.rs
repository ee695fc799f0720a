//! The promotion policy: whether a completed verification goes live at once or waits for a
//! person to review it.
//!
//! A verification that completes while the deployment's [`PromotionPolicy`] holds it does not
//! replace the live image: its image and inventory are kept as a [`PendingReview`] candidate,
//! with the reasons it was held, and the previous image stays the one launches run. An admin
//! then approves the candidate by naming it (its image digest or commit), so a candidate replaced
//! in the meantime is never approved by mistake, or rejects it.
//!
//! A first verification that is held leaves the server without a live image: it cannot be
//! launched until the candidate is approved. Findings the live version already had (approved
//! before, same rule at the same place) do not hold a re-verification again.

use std::fmt;

use serde::{Deserialize, Serialize};

use super::poisoning::{Finding, Location, Severity};
use super::{
    ChangeKind, CommitSha, Server, Timestamp, ToolInventory, VerificationCompletion,
    VerificationFailure, VerificationState, VerificationStep, VerifiedImage,
};
use crate::error::{Error, Result};

/// When a completed verification is held for review instead of going live.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct PromotionPolicy {
    /// Hold when a finding the live version did not have reaches this severity; `None`: findings
    /// never hold.
    #[serde(default)]
    pub hold_on_severity: Option<Severity>,
    /// Hold when a tool that kept its name changed its description (a "rug pull").
    #[serde(default)]
    pub hold_on_description_change: bool,
    /// Hold on a breaking change: a removed tool or a newly required parameter.
    #[serde(default)]
    pub hold_on_breaking_change: bool,
}

impl Default for PromotionPolicy {
    /// Hold on high-severity findings and on description changes.
    fn default() -> Self {
        Self {
            hold_on_severity: Some(Severity::High),
            hold_on_description_change: true,
            hold_on_breaking_change: false,
        }
    }
}

/// The policy's words, as [`PromotionPolicy::parse`] reads them.
const PROMOTE_ALWAYS: &str = "promote-always";
const HOLD_ON_DESCRIPTION_CHANGE: &str = "hold-on-description-change";
const HOLD_ON_BREAKING_CHANGE: &str = "hold-on-breaking-change";

impl PromotionPolicy {
    /// Every verification goes live at once (the opt-out).
    pub const PROMOTE_ALWAYS: Self = Self {
        hold_on_severity: None,
        hold_on_description_change: false,
        hold_on_breaking_change: false,
    };

    /// Parses a comma-separated list: `promote-always` alone, or any of `hold-on-high`,
    /// `hold-on-medium`, `hold-on-low` (findings at or above that severity),
    /// `hold-on-description-change` and `hold-on-breaking-change`.
    ///
    /// ```
    /// use toolshed_core::domain::PromotionPolicy;
    /// let p = PromotionPolicy::parse("hold-on-high, hold-on-description-change").unwrap();
    /// assert_eq!(p, PromotionPolicy::default());
    /// assert_eq!(p.to_string(), "hold-on-high,hold-on-description-change");
    /// assert_eq!(PromotionPolicy::parse("promote-always").unwrap(), PromotionPolicy::PROMOTE_ALWAYS);
    /// assert!(PromotionPolicy::parse("hold-on-everything").is_err());
    /// ```
    ///
    /// # Errors
    /// `InvalidInput { field: "promotion_policy" }` for an unknown word, an empty list, or
    /// `promote-always` combined with a hold.
    pub fn parse(raw: &str) -> Result<Self> {
        let words: Vec<&str> = raw
            .split(',')
            .map(str::trim)
            .filter(|w| !w.is_empty())
            .collect();
        if words.is_empty() {
            return Err(Error::invalid(
                "promotion_policy",
                "name promote-always or at least one hold-on-… rule",
            ));
        }
        if words.contains(&PROMOTE_ALWAYS) {
            if words.len() > 1 {
                return Err(Error::invalid(
                    "promotion_policy",
                    "promote-always cannot be combined with a hold-on-… rule",
                ));
            }
            return Ok(Self::PROMOTE_ALWAYS);
        }
        let mut policy = Self::PROMOTE_ALWAYS;
        for word in words {
            match word.to_ascii_lowercase().as_str() {
                "hold-on-high" => policy.hold_on(Severity::High),
                "hold-on-medium" => policy.hold_on(Severity::Medium),
                "hold-on-low" => policy.hold_on(Severity::Low),
                HOLD_ON_DESCRIPTION_CHANGE => policy.hold_on_description_change = true,
                HOLD_ON_BREAKING_CHANGE => policy.hold_on_breaking_change = true,
                other => {
                    return Err(Error::invalid(
                        "promotion_policy",
                        format!(
                            "{other:?} is not one of promote-always, hold-on-high, hold-on-medium, \
                             hold-on-low, hold-on-description-change, hold-on-breaking-change"
                        ),
                    ))
                }
            }
        }
        Ok(policy)
    }

    /// Lowers the finding threshold to `severity` (the lowest named wins).
    fn hold_on(&mut self, severity: Severity) {
        self.hold_on_severity = Some(self.hold_on_severity.map_or(severity, |s| s.min(severity)));
    }

    /// Why this policy holds `candidate` for review, given the live inventory (`None` when the
    /// server has no live image yet); empty when it may go live at once.
    pub fn review_reasons(
        &self,
        candidate: &ToolInventory,
        live: Option<&ToolInventory>,
    ) -> Vec<ReviewReason> {
        let mut reasons = Vec::new();
        if let Some(threshold) = self.hold_on_severity {
            let approved = |f: &Finding| {
                live.is_some_and(|l| {
                    l.findings
                        .iter()
                        .any(|a| a.rule == f.rule && a.location == f.location)
                })
            };
            reasons.extend(
                candidate
                    .findings
                    .iter()
                    .filter(|f| f.severity >= threshold && !approved(f))
                    .map(|f| ReviewReason::Finding {
                        rule: f.rule.clone(),
                        severity: f.severity,
                        location: f.location.clone(),
                    }),
            );
        }
        if let Some(drift) = &candidate.drift {
            for change in &drift.changes {
                let holds = match change.kind {
                    ChangeKind::DescriptionChanged => self.hold_on_description_change,
                    ChangeKind::Removed | ChangeKind::RequiredParameterAdded => {
                        self.hold_on_breaking_change
                    }
                    ChangeKind::Added | ChangeKind::InputSchemaChanged => false,
                };
                if holds {
                    reasons.push(ReviewReason::Change {
                        kind: change.kind,
                        tool: change.tool.clone(),
                        parameter: change.parameter.clone(),
                    });
                }
            }
        }
        reasons
    }
}

impl fmt::Display for PromotionPolicy {
    /// The form [`PromotionPolicy::parse`] reads.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut words: Vec<String> = Vec::new();
        if let Some(s) = self.hold_on_severity {
            words.push(format!("hold-on-{s}"));
        }
        if self.hold_on_description_change {
            words.push(HOLD_ON_DESCRIPTION_CHANGE.to_owned());
        }
        if self.hold_on_breaking_change {
            words.push(HOLD_ON_BREAKING_CHANGE.to_owned());
        }
        if words.is_empty() {
            f.write_str(PROMOTE_ALWAYS)
        } else {
            f.write_str(&words.join(","))
        }
    }
}

/// One reason a candidate waits for review.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "reason", rename_all = "snake_case")]
pub enum ReviewReason {
    /// A finding at or above the policy's threshold that the live version did not have.
    Finding {
        /// The rule's id, e.g. `TP002`.
        rule: String,
        /// Its severity.
        severity: Severity,
        /// Where it was found.
        location: Location,
    },
    /// A change since the live version the policy holds on.
    Change {
        /// What changed.
        kind: ChangeKind,
        /// The tool.
        tool: String,
        /// The parameter, for a newly required one.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        parameter: Option<String>,
    },
}

impl fmt::Display for ReviewReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ReviewReason::Finding {
                rule,
                severity,
                location,
            } => write!(f, "{rule} ({severity}) in the {location}"),
            ReviewReason::Change {
                kind,
                tool,
                parameter,
            } => {
                let what = match kind {
                    ChangeKind::Added => "was added",
                    ChangeKind::Removed => "was removed",
                    ChangeKind::DescriptionChanged => "changed its description",
                    ChangeKind::RequiredParameterAdded => "requires a new parameter",
                    ChangeKind::InputSchemaChanged => "changed its input schema",
                };
                write!(f, "tool {tool:?} {what}")?;
                if let Some(p) = parameter {
                    write!(f, " ({p:?})")?;
                }
                Ok(())
            }
        }
    }
}

/// A verified candidate the promotion policy held: launches keep running the live image until an
/// admin approves it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PendingReview {
    /// The candidate image (digest-pinned) and its commit.
    pub image: VerifiedImage,
    /// What the probe found in it (findings, drift from the live version).
    pub tools: ToolInventory,
    /// Why it was held.
    pub reasons: Vec<ReviewReason>,
    /// When it was held.
    pub held_at: Timestamp,
}

impl PendingReview {
    /// Whether `expected` names this candidate: its image digest (`sha256:…`) or its full
    /// commit.
    pub fn is_named_by(&self, expected: &str) -> bool {
        let expected = expected.trim();
        !expected.is_empty()
            && (self.image.image.digest().as_str() == expected
                || self.image.commit.as_str() == expected)
    }
}

impl Server {
    /// Applies a completed verification under `completion.policy`: promoted at once (new live
    /// image and tools, state `Verified`, any pending candidate dropped), or held as the pending
    /// candidate (replacing an earlier one; the live image and tools untouched, state
    /// `NeedsReview`). Either way `last_failure` is cleared and one more verification completed.
    ///
    /// A completion without an image (a remote, verified by handshake only) is never held: the
    /// hold keeps launches on the live image, and nothing of a remote is launched here. Its
    /// findings and drift are recorded and shown all the same.
    pub(super) fn apply_completion(&mut self, completion: &VerificationCompletion, now: Timestamp) {
        let live = self.image.as_ref().map(|_| &self.tools);
        let held = match &completion.image {
            Some(image) => {
                let reasons = completion.policy.review_reasons(&completion.tools, live);
                (!reasons.is_empty()).then(|| (image.clone(), reasons))
            }
            None => None,
        };
        match held {
            None => {
                self.image = completion.image.clone();
                self.tools = completion.tools.clone();
                self.pending_review = None;
                self.state = VerificationState::Verified;
            }
            Some((image, reasons)) => {
                self.pending_review = Some(PendingReview {
                    image,
                    tools: completion.tools.clone(),
                    reasons,
                    held_at: now,
                });
                self.state = VerificationState::NeedsReview;
            }
        }
        self.last_failure = None;
        self.verification_count = self.verification_count.saturating_add(1);
        self.updated_at = now;
    }

    /// The pending candidate if `expected` names it.
    ///
    /// # Errors
    /// `ReviewMismatch` when nothing is pending or another candidate is.
    fn pending_named(&self, expected: &str) -> Result<&PendingReview> {
        match &self.pending_review {
            Some(p) if p.is_named_by(expected) => Ok(p),
            other => Err(Error::ReviewMismatch {
                server_id: self.id.clone(),
                expected: expected.to_owned(),
                pending: other
                    .as_ref()
                    .map(|p| p.image.image.digest().as_str().to_owned()),
            }),
        }
    }

    /// Promotes the pending candidate named by `expected` (digest or commit): it becomes the live
    /// image and tools, state `Verified`. The version is left to the repository.
    ///
    /// # Errors
    /// `ReviewMismatch` when nothing is pending or `expected` names another candidate.
    pub fn approve_pending(&mut self, expected: &str, now: Timestamp) -> Result<VerifiedImage> {
        let pending = self.pending_named(expected)?.clone();
        self.image = Some(pending.image.clone());
        self.tools = pending.tools;
        self.pending_review = None;
        self.state = VerificationState::Verified;
        self.last_failure = None;
        self.updated_at = now;
        Ok(pending.image)
    }

    /// Drops the pending candidate named by `expected`: the live image stays, and the rejection
    /// is recorded as the last failure (state `Failed`, step `Record`, not retryable: the same
    /// commit would be held again).
    ///
    /// # Errors
    /// `ReviewMismatch` when nothing is pending or `expected` names another candidate.
    pub fn reject_pending(&mut self, expected: &str, now: Timestamp) -> Result<VerifiedImage> {
        let pending = self.pending_named(expected)?.clone();
        self.pending_review = None;
        self.record_failure(&VerificationFailure {
            step: VerificationStep::Record,
            reason: format!(
                "candidate {} of commit {} was rejected in review",
                pending.image.image.digest(),
                pending.image.commit
            ),
            commit: Some(pending.image.commit.clone()),
            log_url: None,
            at: now,
            retryable: false,
        });
        Ok(pending.image)
    }

    /// The commit of the pending candidate, if any.
    pub fn pending_commit(&self) -> Option<&CommitSha> {
        self.pending_review.as_ref().map(|p| &p.image.commit)
    }
}
