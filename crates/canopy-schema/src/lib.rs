//! Structural OpenAPI v3 schemas of CustomResourceDefinitions.
//!
//! Canopy serves custom resources the way kube-apiserver's
//! apiextensions-apiserver does, so it must accept and reject the same CRD
//! schemas and the same objects, and print the same messages, because
//! clients (kubectl, Helm, controllers) show them to people. This crate is a
//! pure (no I/O, no async) port of the relevant parts of
//! `k8s.io/apiextensions-apiserver` (`pkg/apiserver/schema`,
//! `pkg/apis/apiextensions/validation`) and `k8s.io/kube-openapi`
//! (`pkg/validation/validate`, `strfmt`):
//!
//! * [`validate_crd_schema`] checks an `openAPIV3Schema` when a CRD is
//!   created: structural-schema rules, forbidden keywords, list/map
//!   extensions, defaults that must validate and be pruned.
//! * [`CompiledSchema::compile`] turns the schema into a tree once, to be
//!   cached per CRD version.
//! * [`CompiledSchema::prune`], [`CompiledSchema::prune_non_nullable_nulls`],
//!   [`CompiledSchema::default`] and [`CompiledSchema::validate`] process a
//!   custom resource on every write.
//!
//! kube-apiserver runs these steps in this order when it decodes a write:
//! defaulting, pruning (whose paths become `unknown field "spec.foo"` errors
//! for `fieldValidation=Strict` and warnings for `Warn`), removal of
//! non-nullable nulls, then validation. Defaults are pruned when the schema
//! is compiled, so defaulting before or after pruning gives the same result.
//!
//! ```
//! use canopy_schema::{validate_crd_schema, CompiledSchema};
//! use serde_json::json;
//!
//! let schema = json!({
//!     "type": "object",
//!     "properties": {"spec": {"type": "object", "properties": {
//!         "mode": {"type": "string", "enum": ["a", "b"], "default": "a"},
//!         "items": {"type": "array", "maxItems": 3, "items": {"type": "string"}}
//!     }}}
//! });
//! assert!(validate_crd_schema(&schema, "spec.versions[0].schema.openAPIV3Schema").is_empty());
//!
//! let compiled = CompiledSchema::compile(&schema).unwrap();
//! let mut obj = json!({"apiVersion": "example.com/v1", "kind": "Thing",
//!                      "spec": {"mode": "x", "items": ["1", "2", "3", "4"], "bogus": 1}});
//! assert_eq!(compiled.prune(&mut obj), vec!["spec.bogus"]);
//! compiled.default(&mut obj);
//! let errs: Vec<String> = compiled.validate(&obj).iter().map(|e| e.to_string()).collect();
//! assert_eq!(errs, vec![
//!     r#"spec.mode: Unsupported value: "x": supported values: "a", "b""#,
//!     "spec.items: Too many: 4: must have at most 3 items",
//! ]);
//! ```
//!
//! Not covered: CEL (`x-kubernetes-validations` rules are checked for
//! well-formedness only, never compiled or evaluated), validation
//! ratcheting on update, and the full `ObjectMeta` validation of the root
//! `metadata` (the API server does that itself).

mod crd;
mod default;
mod error;
pub mod formats;
pub use canopy_gofmt as gofmt;
mod goregex;
mod prune;
mod schema;
mod validate;

pub use crd::{validate_crd_schema, validate_crd_schema_with, CrdSchemaOptions};
pub use error::{aggregate, BadValue, CompileError, ErrorType, FieldError};
pub use schema::CompiledSchema;
