//! Label and field selectors of lists, watches and deletecollection.

use canopy_core::{meta, ApiError};
use serde_json::Value;

use crate::pipeline::Ctx;
use crate::registry::Resource;

/// Label and field selectors of a list or watch, checked against what the resource supports.
pub struct Selectors {
    pub labels: canopy_selectors::label::Selector,
    pub fields: canopy_selectors::field::Selector,
}

impl Selectors {
    pub fn from_ctx(ctx: &Ctx, res: &Resource) -> Result<Selectors, ApiError> {
        let labels =
            canopy_selectors::label::parse(ctx.q("labelSelector").unwrap_or("")).map_err(|e| {
                ApiError::bad_request(format!("unable to parse requirement: {e}"))
                    .with_reason_invalid_selector()
            })?;
        let fields = canopy_selectors::field::parse(ctx.q("fieldSelector").unwrap_or(""))
            .map_err(|e| ApiError::bad_request(format!("invalid field selector: {e}")))?;
        let extra = res.strategy.selectable_fields();
        let mut allowed: Vec<&str> = vec!["metadata.name", "metadata.namespace"];
        allowed.extend(extra.iter().map(String::as_str));
        fields
            .check_supported(&allowed)
            .map_err(|e| ApiError::bad_request(e.to_string()))?;
        Ok(Selectors { labels, fields })
    }

    pub fn matches(&self, res: &Resource, obj: &Value) -> bool {
        if let Some(v) = res.strategy.from_storage(obj) {
            return self.matches_served(res, &v);
        }
        self.matches_served(res, obj)
    }

    fn matches_served(&self, res: &Resource, obj: &Value) -> bool {
        if !self.labels.is_empty() && !self.labels.matches(meta::labels(obj)) {
            return false;
        }
        if !self.fields.is_empty() {
            let ok = self.fields.matches(|f| match f {
                "metadata.name" => Some(meta::name(obj).to_string()),
                "metadata.namespace" => Some(meta::namespace(obj).to_string()),
                other => res.strategy.field_value(obj, other),
            });
            if !ok {
                return false;
            }
        }
        true
    }
}

trait InvalidSelector {
    fn with_reason_invalid_selector(self) -> Self;
}
impl InvalidSelector for ApiError {
    fn with_reason_invalid_selector(self) -> Self {
        self
    }
}
