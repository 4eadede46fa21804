//! Templates in integration settings: `${stageVariables.x}` substitution (done once per stage
//! when the plan is compiled) and `{param}` path templates (resolved per request from the route's
//! captures without parsing anything).

/// One piece of a compiled path template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Part {
    /// Bytes copied as they are.
    Literal(String),
    /// The route capture with this index (template order), copied raw (percent-encoding kept).
    Capture(usize),
}

/// Replaces every `${stageVariables.NAME}` in `text`. Errors with the first missing name.
pub fn substitute_stage_variables(
    text: &str,
    lookup: impl Fn(&str) -> Option<String>,
) -> Result<String, String> {
    const OPEN: &str = "${stageVariables.";
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find(OPEN) {
        out.push_str(&rest[..start]);
        let after = &rest[start + OPEN.len()..];
        let end = after
            .find('}')
            .ok_or_else(|| "an unclosed ${stageVariables.…} reference".to_string())?;
        let name = &after[..end];
        let value = lookup(name).ok_or_else(|| name.to_string())?;
        out.push_str(&value);
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

/// Compiles `{name}` references in `text` against a route's parameter names.
/// `{name+}` is accepted as a synonym of `{name}`. Errors with the unknown name.
pub fn compile_params(text: &str, params: &[String]) -> Result<Vec<Part>, String> {
    let mut parts = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find('{') {
        if start > 0 {
            parts.push(Part::Literal(rest[..start].to_string()));
        }
        let after = &rest[start + 1..];
        let end = after
            .find('}')
            .ok_or_else(|| format!("an unclosed '{{' in {text:?}"))?;
        let name = after[..end].trim_end_matches('+');
        let index = params
            .iter()
            .position(|p| p == name)
            .ok_or_else(|| name.to_string())?;
        parts.push(Part::Capture(index));
        rest = &after[end + 1..];
    }
    if !rest.is_empty() {
        parts.push(Part::Literal(rest.to_string()));
    }
    Ok(parts)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stage_variables_are_substituted_and_missing_ones_named() {
        let vars = |n: &str| (n == "host").then(|| "10.0.0.1:80".to_string());
        assert_eq!(
            substitute_stage_variables("http://${stageVariables.host}/x", vars).as_deref(),
            Ok("http://10.0.0.1:80/x")
        );
        assert_eq!(
            substitute_stage_variables("${stageVariables.nope}", vars),
            Err("nope".to_string())
        );
    }

    #[test]
    fn params_compile_to_capture_indices() {
        let params = vec!["id".to_string(), "proxy".to_string()];
        assert_eq!(
            compile_params("/pets/{id}/{proxy+}", &params),
            Ok(vec![
                Part::Literal("/pets/".into()),
                Part::Capture(0),
                Part::Literal("/".into()),
                Part::Capture(1)
            ])
        );
        assert_eq!(compile_params("/{other}", &params), Err("other".into()));
    }
}
