//! Apply conflicts and the 409 `Status` kube answers with.
//!
//! The message is kube's (`Apply failed with 1 conflict: conflict with "kubectl-client-side-apply"
//! using v1: .spec.replicas`; with more, grouped by manager), and each conflict is one cause
//! of type `FieldManagerConflict` whose message names the manager and whose field is the path.

use std::collections::BTreeMap;
use std::fmt;

use serde_json::{json, Value};

use crate::managed::ManagerId;
use crate::path::Path;

/// A field the applied configuration changes that another manager owns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Conflict {
    pub manager: ManagerId,
    pub path: Path,
}

/// The conflicts of a rejected apply.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Conflicts(pub Vec<Conflict>);

impl Conflicts {
    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// kube's message (`getConflictMessage`).
    pub fn message(&self) -> String {
        if self.0.len() == 1 {
            let c = &self.0[0];
            return format!(
                "Apply failed with 1 conflict: conflict with {}: {}",
                c.manager.display(),
                c.path
            );
        }
        let mut by_manager: BTreeMap<String, (&ManagerId, Vec<&Path>)> = BTreeMap::new();
        for c in &self.0 {
            by_manager
                .entry(c.manager.identifier())
                .or_insert_with(|| (&c.manager, Vec::new()))
                .1
                .push(&c.path);
        }
        let mut lines = Vec::new();
        for (manager, paths) in by_manager.values() {
            lines.push(format!("conflicts with {}:", manager.display()));
            for p in paths {
                lines.push(format!("- {p}"));
            }
        }
        format!(
            "Apply failed with {} conflicts: {}",
            self.0.len(),
            lines.join("\n")
        )
    }

    /// The `details.causes` of the 409: one `FieldManagerConflict` per conflict.
    pub fn causes(&self) -> Vec<Value> {
        self.0
            .iter()
            .map(|c| {
                json!({
                    "reason": "FieldManagerConflict",
                    "message": format!("conflict with {}", c.manager.display()),
                    "field": c.path.to_string(),
                })
            })
            .collect()
    }

    /// The `Status` object kube answers with (HTTP 409, reason `Conflict`).
    pub fn to_status(&self) -> Value {
        json!({
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message(),
            "reason": "Conflict",
            "details": {"causes": self.causes()},
            "code": 409,
        })
    }
}

impl fmt::Display for Conflicts {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message())
    }
}

impl std::error::Error for Conflicts {}
