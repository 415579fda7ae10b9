//! Phases and conditions of the tenancy kinds, as enums that keep values they do not
//! know (`Other`), so that reading and writing back never loses what a newer client or
//! kcp itself wrote.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// A string enum of known values plus `Other(String)` for anything else. Serializes as
/// the plain string; `From<&str>` maps a known value to its variant (build `Other` only
/// through it, so that `Other("Ready")` never exists).
macro_rules! string_enum {
    ($(#[$m:meta])* $name:ident { $($(#[$vm:meta])* $variant:ident = $s:literal),* $(,)? }) => {
        $(#[$m])*
        #[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum $name {
            $($(#[$vm])* $variant,)*
            /// A value this version does not know, kept as written.
            Other(String),
        }

        impl $name {
            pub fn as_str(&self) -> &str {
                match self {
                    $(Self::$variant => $s,)*
                    Self::Other(s) => s,
                }
            }
        }

        impl From<&str> for $name {
            fn from(s: &str) -> Self {
                match s {
                    $($s => Self::$variant,)*
                    other => Self::Other(other.to_string()),
                }
            }
        }

        impl From<String> for $name {
            fn from(s: String) -> Self {
                Self::from(s.as_str())
            }
        }

        impl std::str::FromStr for $name {
            type Err = std::convert::Infallible;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Ok(Self::from(s))
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl PartialEq<str> for $name {
            fn eq(&self, other: &str) -> bool {
                self.as_str() == other
            }
        }

        impl Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(self.as_str())
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                Ok(Self::from(String::deserialize(d)?))
            }
        }
    };
}

string_enum! {
    /// The phase of a Workspace or LogicalCluster (kcp's `LogicalClusterPhaseType`, plus
    /// `Deleting`, which a Workspace shows while its logical cluster is removed).
    Phase {
        Scheduling = "Scheduling",
        Initializing = "Initializing",
        Ready = "Ready",
        Unavailable = "Unavailable",
        Terminating = "Terminating",
        Deleting = "Deleting",
    }
}

string_enum! {
    /// A condition's type (kcp's `conditionsv1alpha1.ConditionType` values of the tenancy
    /// and core kinds).
    ConditionType {
        /// The scheduling of a workspace onto a shard.
        WorkspaceScheduled = "WorkspaceScheduled",
        /// All resources in the workspace are deleted.
        WorkspaceContentDeleted = "WorkspaceContentDeleted",
        /// Initialization has finished.
        WorkspaceInitialized = "WorkspaceInitialized",
        /// The initial APIBindings of the workspace.
        APIBindingsInitialized = "APIBindingsInitialized",
        /// A WorkspaceType's virtual workspace URLs.
        VirtualWorkspaceURLsReady = "VirtualWorkspaceURLsReady",
        Ready = "Ready",
    }
}

string_enum! {
    /// A condition's reason (kcp's reasons for the condition types above).
    ConditionReason {
        /// WorkspaceScheduled: no shard can take the workspace now.
        Unschedulable = "Unschedulable",
        /// WorkspaceScheduled: scheduling failed for an unexpected reason.
        Unknown = "Unknown",
        /// WorkspaceInitialized: at least one initializer is left.
        InitializerExists = "InitializerExists",
        /// WorkspaceInitialized: the LogicalCluster object disappeared.
        WorkspaceDisappeared = "WorkspaceDisappeared",
        /// APIBindingsInitialized: an APIBinding is not ready.
        WaitingOnAPIBindings = "WaitingOnAPIBindings",
        /// APIBindingsInitialized: the WorkspaceType is invalid (e.g. an `extend` cycle).
        WorkspaceTypesInvalid = "WorkspaceTypesInvalid",
        /// APIBindingsInitialized: creating APIBindings failed.
        APIBindingErrors = "APIBindingErrors",
        /// VirtualWorkspaceURLsReady: the URLs could not be generated.
        ErrorGeneratingURLs = "ErrorGeneratingURLs",
    }
}

string_enum! {
    /// A condition's status (`corev1.ConditionStatus`).
    ConditionStatus {
        True = "True",
        False = "False",
        Unknown = "Unknown",
    }
}

string_enum! {
    /// How bad a `False` condition is (kcp's `ConditionSeverity`).
    ConditionSeverity {
        Error = "Error",
        Warning = "Warning",
        Info = "Info",
    }
}

/// One condition, in kcp's shape (`third_party/conditions/.../v1alpha1.Condition`): unlike
/// metav1's `Condition` (k8s-openapi), `reason` and `message` are optional and there is
/// a `severity`, so kcp's own type is modelled rather than k8s-openapi's.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Condition {
    #[serde(rename = "type")]
    pub type_: ConditionType,
    pub status: ConditionStatus,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub severity: Option<ConditionSeverity>,
    /// RFC 3339, as `metav1.Time` writes it; kept as written.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_transition_time: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<ConditionReason>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// Fields this version does not know, kept as written.
    #[serde(flatten)]
    pub extra: BTreeMap<String, Value>,
}

impl Condition {
    /// A condition of `type_` with `status`, changed now (`time`, RFC 3339).
    pub fn new(
        type_: ConditionType,
        status: ConditionStatus,
        time: impl Into<String>,
    ) -> Condition {
        Condition {
            type_,
            status,
            severity: None,
            last_transition_time: Some(time.into()),
            reason: None,
            message: None,
            extra: BTreeMap::new(),
        }
    }

    pub fn with_reason(mut self, reason: ConditionReason, message: impl Into<String>) -> Condition {
        self.reason = Some(reason);
        self.message = Some(message.into());
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    #[test]
    fn known_and_unknown_values() {
        assert_eq!(Phase::from("Ready"), Phase::Ready);
        assert_eq!(Phase::from("Frozen"), Phase::Other("Frozen".into()));
        assert_eq!(
            serde_json::to_value(Phase::Other("Frozen".into())).unwrap(),
            json!("Frozen")
        );
        let p: Phase = serde_json::from_value(json!("Initializing")).unwrap();
        assert_eq!(p, Phase::Initializing);
        assert!(Phase::Ready == *"Ready");
    }

    #[test]
    fn condition_keeps_unknown_fields() {
        let v = json!({"type": "WorkspaceScheduled", "status": "False", "reason": "Unschedulable",
            "message": "no shard", "lastTransitionTime": "2026-01-01T00:00:00Z", "observedGeneration": 3});
        let c: Condition = serde_json::from_value(v.clone()).unwrap();
        assert_eq!(c.type_, ConditionType::WorkspaceScheduled);
        assert_eq!(c.reason, Some(ConditionReason::Unschedulable));
        assert_eq!(serde_json::to_value(&c).unwrap(), v);
    }

    proptest! {
        #[test]
        fn every_string_round_trips(s in "\\PC{0,16}") {
            for v in [Phase::from(s.as_str()).to_string(), ConditionType::from(s.as_str()).to_string(),
                      ConditionReason::from(s.as_str()).to_string(), ConditionStatus::from(s.as_str()).to_string()] {
                prop_assert_eq!(&v, &s);
            }
            let back: Phase = serde_json::from_value(serde_json::to_value(Phase::from(s.as_str())).unwrap()).unwrap();
            prop_assert_eq!(back, Phase::from(s.as_str()));
        }
    }
}
