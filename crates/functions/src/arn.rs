//! Function ARNs: `arn:aws:lambda:REGION:ACCOUNT:function:NAME[:QUALIFIER]` to a name and back.

use crate::error::{Error, Result};

/// Region written into the ARNs this host hands out.
pub const REGION: &str = "us-east-1";

/// Account written into the ARNs this host hands out: the one local AWS emulators use.
pub const ACCOUNT_ID: &str = "000000000000";

/// The ARN of function `name` as this host reports it.
pub fn function_arn(name: &str) -> String {
    format!("arn:aws:lambda:{REGION}:{ACCOUNT_ID}:function:{name}")
}

/// The function name in `name_or_arn`: a plain name is returned as it is; an ARN
/// `arn:aws:lambda:REGION:ACCOUNT:function:NAME` or `…:NAME:QUALIFIER` gives `NAME`.
/// Region, account and qualifier are accepted whatever they are: one host has one version of
/// each function.
pub fn function_name(name_or_arn: &str) -> Result<&str> {
    if !name_or_arn.starts_with("arn:") {
        return Ok(name_or_arn);
    }
    let invalid = || Error::InvalidArn {
        arn: name_or_arn.to_owned(),
    };
    let parts: Vec<&str> = name_or_arn.split(':').collect();
    match parts.as_slice() {
        [
            "arn",
            _partition,
            "lambda",
            _region,
            _account,
            "function",
            name,
        ]
        | [
            "arn",
            _partition,
            "lambda",
            _region,
            _account,
            "function",
            name,
            _,
        ] => {
            if name.is_empty() {
                Err(invalid())
            } else {
                Ok(name)
            }
        }
        _ => Err(invalid()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_arns() {
        assert_eq!(function_name("my-fn").unwrap(), "my-fn");
        assert_eq!(
            function_name("arn:aws:lambda:us-east-1:000000000000:function:my-fn").unwrap(),
            "my-fn"
        );
        assert_eq!(
            function_name("arn:aws:lambda:eu-west-1:123456789012:function:my-fn:$LATEST").unwrap(),
            "my-fn"
        );
        assert_eq!(function_name(&function_arn("x")).unwrap(), "x");
        for bad in [
            "arn:aws:lambda:us-east-1:0:function:",
            "arn:aws:s3:::bucket",
            "arn:aws:lambda:us-east-1:0:layer:x",
            "arn:aws:lambda:us-east-1:0:function:a:b:c",
        ] {
            assert!(
                matches!(function_name(bad), Err(Error::InvalidArn { .. })),
                "{bad}"
            );
        }
    }
}
