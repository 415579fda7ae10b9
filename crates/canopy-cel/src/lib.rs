//! CRD validation rules (`x-kubernetes-validations`) compiled and evaluated
//! with CEL the way kube-apiserver does.
//!
//! ```
//! use canopy_cel::CompiledRules;
//! use serde_json::json;
//!
//! let schema = json!({
//!     "type": "object",
//!     "properties": {"spec": {
//!         "type": "object",
//!         "properties": {"replicas": {"type": "integer"}},
//!         "x-kubernetes-validations": [
//!             {"rule": "self.replicas >= oldSelf.replicas", "message": "replicas may not decrease"}
//!         ]
//!     }}
//! });
//! let rules = CompiledRules::compile(&schema).unwrap();
//! let old = json!({"spec": {"replicas": 3}});
//! let new = json!({"spec": {"replicas": 2}});
//! let errs = rules.validate(&new, Some(&old));
//! assert_eq!(errs[0].to_string(), "spec: Invalid value: \"object\": replicas may not decrease");
//! ```
//!
//! * [`CompiledRules::compile`] walks an OpenAPI v3 schema, compiles every
//!   rule and `messageExpression` once, type-checks them against the schema
//!   and estimates their cost, reporting problems as kube does when a CRD is
//!   created (`spec.validation.openAPIV3Schema...x-kubernetes-validations[0].rule: ...`).
//! * [`CompiledRules::validate`] evaluates the rules at every node of an
//!   object, with `oldSelf` correlated as kube correlates it, and returns
//!   kube's field errors.
//!
//! Modules: [`errors`] (paths and errors), [`schema`] (the schema model),
//! [`types`] (CEL types of schemas), [`check`] (type checker and cost
//! estimator), [`value`] (JSON to CEL values), [`library`] (the Kubernetes
//! CEL library and the cost meter), [`netfmt`] (IPs, CIDRs and named formats), [`quantity`] (resource quantities),
//! [`instrument`] (runtime cost metering), [`guard`] (parser limits: length and
//! nesting, checked without recursion), [`compile`] and [`validate`].

pub mod check;
pub mod compile;
pub mod errors;
pub mod guard;
pub mod instrument;
pub mod library;
pub mod netfmt;
pub mod quantity;
pub mod schema;
pub mod types;
pub mod validate;
pub mod value;

pub use errors::{BadValue, ErrorType, FieldError, FieldPath, PathElement, RuleError};
pub use schema::RawRule;

use compile::{Compiler, Node};
use serde_json::Value;

/// Runtime cost limit of one evaluation of one rule (kube's `PerCallLimit`).
pub const PER_CALL_LIMIT: u64 = 1_000_000;
/// Runtime cost budget of the validation of one object (kube's
/// `RuntimeCELCostBudget`).
pub const RUNTIME_CEL_COST_BUDGET: i64 = 10_000_000;
/// Largest estimated cost of one rule, multiplied by how many times it can be
/// evaluated (kube's `StaticEstimatedCostLimit`).
pub const STATIC_ESTIMATED_COST_LIMIT: u64 = 10_000_000;
/// Largest estimated cost of all rules of a CRD (kube's
/// `StaticEstimatedCRDCostLimit`).
pub const STATIC_ESTIMATED_CRD_COST_LIMIT: u64 = 100_000_000;

/// The schema path compilation errors are reported under by default.
pub const DEFAULT_SCHEMA_PATH: &str = "spec.validation.openAPIV3Schema";

/// The compiled validation rules of a schema.
#[derive(Debug)]
pub struct CompiledRules {
    root: Option<Node>,
    rule_count: usize,
    has_transition: bool,
    estimated_cost: u64,
}

/// Options of [`CompiledRules::validate_with`].
#[derive(Clone, Debug)]
pub struct ValidateOptions {
    /// Path of the validated object (the root path, `<nil>`, for a custom resource).
    pub base_path: FieldPath,
    /// Cost budget (defaults to [`RUNTIME_CEL_COST_BUDGET`]).
    pub budget: i64,
    /// Whether errors of unchanged values are downgraded to warnings on update
    /// (kube's `CRDValidationRatcheting`, on by default).
    pub ratcheting: bool,
}

impl Default for ValidateOptions {
    fn default() -> Self {
        ValidateOptions {
            base_path: FieldPath::root(),
            budget: RUNTIME_CEL_COST_BUDGET,
            ratcheting: true,
        }
    }
}

/// The outcome of [`CompiledRules::validate_with`].
#[derive(Clone, Debug, Default)]
pub struct Validation {
    /// Field errors.
    pub errors: Vec<FieldError>,
    /// Errors of rules on values unchanged by an update, reported as warnings
    /// (ratcheting).
    pub warnings: Vec<FieldError>,
    /// Budget left; negative once it ran out.
    pub remaining_budget: i64,
}

impl CompiledRules {
    /// Compiles the rules of an OpenAPI v3 schema (the `openAPIV3Schema` of a
    /// CRD version); errors are reported under [`DEFAULT_SCHEMA_PATH`].
    pub fn compile(openapi_v3_schema: &Value) -> Result<CompiledRules, Vec<RuleError>> {
        Self::compile_at(openapi_v3_schema, &FieldPath::new(DEFAULT_SCHEMA_PATH))
    }

    /// Compiles, reporting errors under `schema_path` (e.g.
    /// `spec.versions[1].schema.openAPIV3Schema`).
    pub fn compile_at(
        openapi_v3_schema: &Value,
        schema_path: &FieldPath,
    ) -> Result<CompiledRules, Vec<RuleError>> {
        stacker::maybe_grow(
            guard::COMPILE_STACK_BYTES,
            guard::COMPILE_STACK_BYTES,
            || Self::compile_on_stack(openapi_v3_schema, schema_path),
        )
    }

    fn compile_on_stack(
        openapi_v3_schema: &Value,
        schema_path: &FieldPath,
    ) -> Result<CompiledRules, Vec<RuleError>> {
        let schema = schema::Schema::from_json(openapi_v3_schema);
        let mut c = Compiler::new();
        let root = c.node(&schema, schema_path, true, Some(1), None);
        c.check_total(schema_path);
        if !c.errors.is_empty() {
            return Err(c.errors);
        }
        Ok(CompiledRules {
            root,
            rule_count: c.rule_count,
            has_transition: c.has_transition,
            estimated_cost: c.total_cost,
        })
    }

    /// Whether the schema has no rules.
    pub fn is_empty(&self) -> bool {
        self.rule_count == 0
    }

    /// Number of compiled rules.
    pub fn rule_count(&self) -> usize {
        self.rule_count
    }

    /// Whether any rule references `oldSelf` (a transition rule).
    pub fn has_transition_rules(&self) -> bool {
        self.has_transition
    }

    /// The estimated cost of all rules, as checked against
    /// [`STATIC_ESTIMATED_CRD_COST_LIMIT`].
    pub fn estimated_cost(&self) -> u64 {
        self.estimated_cost
    }

    /// Evaluates every rule on `obj` (with `old`, the stored object, on
    /// update) and returns the field errors.
    pub fn validate(&self, obj: &Value, old: Option<&Value>) -> Vec<FieldError> {
        self.validate_with(obj, old, &ValidateOptions::default())
            .errors
    }

    /// [`validate`](Self::validate) with options, also returning warnings and
    /// the budget left.
    pub fn validate_with(
        &self,
        obj: &Value,
        old: Option<&Value>,
        opts: &ValidateOptions,
    ) -> Validation {
        stacker::maybe_grow(guard::EVAL_RED_ZONE_BYTES, guard::EVAL_STACK_BYTES, || {
            self.validate_on_stack(obj, old, opts)
        })
    }

    fn validate_on_stack(
        &self,
        obj: &Value,
        old: Option<&Value>,
        opts: &ValidateOptions,
    ) -> Validation {
        let Some(root) = &self.root else {
            return Validation {
                remaining_budget: opts.budget,
                ..Default::default()
            };
        };
        let env = library::env();
        let mut run = validate::Run {
            env: &env,
            budget: opts.budget,
            errors: Vec::new(),
            warnings: Vec::new(),
            ratcheting: opts.ratcheting,
        };
        validate::validate_root(&mut run, root, &opts.base_path, obj, old);
        Validation {
            errors: run.errors,
            warnings: run.warnings,
            remaining_budget: run.budget,
        }
    }
}
