//! A function's deployed configuration, read from the SAM template: its environment
//! variables (with the `Globals`), timeout, memory size and log level. The variables keep
//! their template expressions; filling them for local use is the caller's job.

use std::collections::BTreeMap;
use std::path::Path;

use serde_norway::Value;

#[derive(Debug, thiserror::Error)]
pub enum TemplateError {
    #[error("cannot read the template {path}: {source}")]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{path} is not valid YAML: {source}")]
    Yaml {
        path: String,
        #[source]
        source: serde_norway::Error,
    },
    #[error(
        "{path} has no AWS::Serverless::Function built from the binary `{binary}` \
         (Metadata.BuildProperties.Binary)"
    )]
    NoFunction { path: String, binary: String },
}

/// A variable's value as the template writes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Expression {
    /// A plain string, number or boolean.
    Literal(String),
    /// `!Ref X` (or `{Ref: X}`): a parameter or a resource.
    Ref(String),
    /// Anything else (`!Sub`, `!GetAtt`, `!If`, ...), shown as YAML.
    Other(String),
}

/// What invoke needs to know about a template parameter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Parameter {
    pub default: Option<String>,
}

/// One function of the template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FunctionTemplate {
    pub logical_id: String,
    /// `Globals.Function.Environment.Variables` with the function's own over them.
    pub variables: BTreeMap<String, Expression>,
    pub timeout_seconds: Option<u64>,
    pub memory_mb: Option<u32>,
    /// `LoggingConfig.ApplicationLogLevel`, which Lambda passes as `AWS_LAMBDA_LOG_LEVEL`.
    pub log_level: Option<String>,
    /// `LoggingConfig.LogFormat`, which Lambda passes as `AWS_LAMBDA_LOG_FORMAT`.
    pub log_format: Option<String>,
    /// Every parameter of the template.
    pub parameters: BTreeMap<String, Parameter>,
    /// Logical id and `Type` of every resource of the template.
    pub resources: BTreeMap<String, String>,
}

/// Reads the function built from `binary` (`Metadata.BuildProperties.Binary`) out of the
/// template at `path`.
pub fn load(path: &Path, binary: &str) -> Result<FunctionTemplate, TemplateError> {
    let shown = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|source| TemplateError::Read {
        path: shown.clone(),
        source,
    })?;
    parse(&text, binary).map_err(|error| match error {
        TemplateParseError::Yaml(source) => TemplateError::Yaml {
            path: shown.clone(),
            source,
        },
        TemplateParseError::NoFunction => TemplateError::NoFunction {
            path: shown.clone(),
            binary: binary.to_owned(),
        },
    })
}

#[derive(Debug)]
pub enum TemplateParseError {
    Yaml(serde_norway::Error),
    NoFunction,
}

/// [`load`] on the template's text.
pub fn parse(text: &str, binary: &str) -> Result<FunctionTemplate, TemplateParseError> {
    let template: Value = serde_norway::from_str(text).map_err(TemplateParseError::Yaml)?;
    let resources = template.get("Resources").and_then(Value::as_mapping);
    let (logical_id, function) = resources
        .into_iter()
        .flatten()
        .find(|(_, resource)| {
            resource.get("Type").and_then(Value::as_str) == Some("AWS::Serverless::Function")
                && path(resource, &["Metadata", "BuildProperties", "Binary"])
                    .and_then(Value::as_str)
                    == Some(binary)
        })
        .ok_or(TemplateParseError::NoFunction)?;
    let globals = path(&template, &["Globals", "Function"]);
    let properties = function.get("Properties");
    // The function's own setting, else the global one.
    let setting = |keys: &[&str]| {
        properties
            .and_then(|p| path(p, keys))
            .or_else(|| globals.and_then(|g| path(g, keys)))
    };
    let mut variables = BTreeMap::new();
    for scope in [globals, properties].into_iter().flatten() {
        let declared = path(scope, &["Environment", "Variables"]).and_then(Value::as_mapping);
        for (name, value) in declared.into_iter().flatten() {
            if let Some(name) = name.as_str() {
                variables.insert(name.to_owned(), expression(value));
            }
        }
    }
    Ok(FunctionTemplate {
        logical_id: logical_id.as_str().unwrap_or_default().to_owned(),
        variables,
        timeout_seconds: setting(&["Timeout"]).and_then(Value::as_u64),
        memory_mb: setting(&["MemorySize"])
            .and_then(Value::as_u64)
            .and_then(|mb| u32::try_from(mb).ok()),
        log_level: setting(&["LoggingConfig", "ApplicationLogLevel"]).and_then(literal),
        log_format: setting(&["LoggingConfig", "LogFormat"]).and_then(literal),
        parameters: named(&template, "Parameters", |parameter| Parameter {
            default: parameter.get("Default").and_then(literal),
        }),
        resources: named(&template, "Resources", |resource| {
            resource
                .get("Type")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned()
        }),
    })
}

fn path<'a>(value: &'a Value, keys: &[&str]) -> Option<&'a Value> {
    keys.iter().try_fold(value, |value, key| value.get(*key))
}

fn named<T>(template: &Value, section: &str, each: impl Fn(&Value) -> T) -> BTreeMap<String, T> {
    let entries = template.get(section).and_then(Value::as_mapping);
    entries
        .into_iter()
        .flatten()
        .filter_map(|(name, value)| Some((name.as_str()?.to_owned(), each(value))))
        .collect()
}

fn literal(value: &Value) -> Option<String> {
    match value {
        Value::String(text) => Some(text.clone()),
        Value::Number(number) => Some(number.to_string()),
        Value::Bool(flag) => Some(flag.to_string()),
        _ => None,
    }
}

fn expression(value: &Value) -> Expression {
    if let Some(text) = literal(value) {
        return Expression::Literal(text);
    }
    let reference = match value {
        Value::Tagged(tagged) if tagged.tag == "Ref" => tagged.value.as_str(),
        Value::Mapping(mapping) if mapping.len() == 1 => mapping.get("Ref").and_then(Value::as_str),
        _ => None,
    };
    match reference {
        Some(name) => Expression::Ref(name.to_owned()),
        None => Expression::Other(
            serde_norway::to_string(value)
                .map(|yaml| yaml.trim().replace('\n', " "))
                .unwrap_or_default(),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEMPLATE: &str = r#"
Parameters:
  Secret: { Type: String, NoEcho: true }
  Tolerance: { Type: Number, Default: 300 }
Globals:
  Function:
    Timeout: 30
    MemorySize: 256
    LoggingConfig: { LogFormat: JSON, ApplicationLogLevel: INFO }
    Environment:
      Variables: { SHARED: "1", OVERRIDDEN: global }
Resources:
  Queue: { Type: AWS::SQS::Queue }
  Fn:
    Type: AWS::Serverless::Function
    Metadata: { BuildProperties: { Binary: thing } }
    Properties:
      Timeout: 10
      Environment:
        Variables:
          OVERRIDDEN: own
          SECRET: !Ref Secret
          TOLERANCE: { Ref: Tolerance }
          QUEUE: !GetAtt Queue.Arn
          COUNT: 8
"#;

    #[test]
    fn reads_variables_settings_parameters_and_resources() {
        let function = parse(TEMPLATE, "thing").unwrap();
        assert_eq!(function.logical_id, "Fn");
        let literal = |text: &str| Expression::Literal(text.to_owned());
        assert_eq!(function.variables["SHARED"], literal("1"));
        assert_eq!(function.variables["OVERRIDDEN"], literal("own"));
        assert_eq!(function.variables["COUNT"], literal("8"));
        assert_eq!(
            function.variables["SECRET"],
            Expression::Ref("Secret".into())
        );
        assert_eq!(
            function.variables["TOLERANCE"],
            Expression::Ref("Tolerance".into())
        );
        assert!(
            matches!(&function.variables["QUEUE"], Expression::Other(yaml) if yaml.contains("Queue.Arn"))
        );
        assert_eq!(function.timeout_seconds, Some(10));
        assert_eq!(function.memory_mb, Some(256));
        assert_eq!(function.log_level.as_deref(), Some("INFO"));
        assert_eq!(
            function.parameters["Tolerance"].default.as_deref(),
            Some("300")
        );
        assert_eq!(function.parameters["Secret"].default, None);
        assert_eq!(function.resources["Queue"], "AWS::SQS::Queue");
    }

    #[test]
    fn a_binary_without_a_function_is_an_error() {
        assert!(matches!(
            parse(TEMPLATE, "other"),
            Err(TemplateParseError::NoFunction)
        ));
        assert!(matches!(
            parse("a: [", "thing"),
            Err(TemplateParseError::Yaml(_))
        ));
    }

    #[test]
    fn the_project_template_has_the_three_functions() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../infra/template.yaml");
        for binary in ["ingest", "enricher", "orchestrator"] {
            let function = load(&path, binary).unwrap();
            assert!(!function.variables.is_empty(), "{binary}");
        }
    }
}
