//! The queue length of an aws-sqs-queue trigger, summed from the queue's attributes as KEDA
//! sums them, and the queue name KEDA takes from the queue URL. Pure, tested without a server.

use std::collections::HashMap;

use aws_sdk_sqs::types::QueueAttributeName;

/// The attributes to ask for: visible messages, plus in-flight (received, not yet deleted) with
/// `scaleOnInFlight`, plus delayed with `scaleOnDelayed`.
pub fn attribute_names(
    scale_on_in_flight: bool,
    scale_on_delayed: bool,
) -> Vec<QueueAttributeName> {
    let mut names = vec![QueueAttributeName::ApproximateNumberOfMessages];
    if scale_on_in_flight {
        names.push(QueueAttributeName::ApproximateNumberOfMessagesNotVisible);
    }
    if scale_on_delayed {
        names.push(QueueAttributeName::ApproximateNumberOfMessagesDelayed);
    }
    names
}

/// The sum of the requested attributes; every one must be present and an integer.
pub fn queue_length(
    attributes: Option<&HashMap<QueueAttributeName, String>>,
    names: &[QueueAttributeName],
) -> Result<i64, String> {
    let mut total: i64 = 0;
    for name in names {
        let raw = attributes
            .and_then(|a| a.get(name))
            .ok_or_else(|| format!("metric {} not found in SQS queue attributes", name.as_str()))?;
        let n: i64 = raw.trim().parse().map_err(|_| {
            format!(
                "SQS queue attribute {} is not an integer: {raw:?}",
                name.as_str()
            )
        })?;
        total = total.saturating_add(n);
    }
    Ok(total)
}

/// The scheme of `s` as Go's URL parser reads it, if any.
fn has_scheme(s: &str) -> bool {
    s.split_once(':').is_some_and(|(scheme, _)| {
        let mut chars = scheme.chars();
        chars.next().is_some_and(|c| c.is_ascii_alphabetic())
            && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'))
    })
}

/// KEDA's queue name: the last of exactly two path segments of the queue URL
/// (`https://sqs.<region>.amazonaws.com/<account>/<name>`); a value that is not a URL at all is
/// taken as the name itself.
pub fn queue_name(queue_url: &str) -> Result<String, String> {
    // Go's url.ParseRequestURI accepts absolute URLs and absolute paths only.
    let path = if queue_url.starts_with('/') {
        queue_url
            .split(['?', '#'])
            .next()
            .unwrap_or_default()
            .to_owned()
    } else if has_scheme(queue_url) {
        match url::Url::parse(queue_url) {
            Ok(url) => url.path().to_owned(),
            Err(_) => return Ok(queue_url.to_owned()),
        }
    } else {
        return Ok(queue_url.to_owned());
    };
    let parts: Vec<&str> = path.split('/').collect();
    match parts.as_slice() {
        ["", _, name] if !name.is_empty() => Ok((*name).to_owned()),
        _ => Err("cannot get queueName from queueURL".to_owned()),
    }
}

/// The region an AWS queue URL names (`sqs.<region>.amazonaws.com` or the legacy
/// `<region>.queue.amazonaws.com`), used to explain a region mismatch.
pub fn region_of_url(queue_url: &str) -> Option<String> {
    let host = url::Url::parse(queue_url).ok()?.host_str()?.to_owned();
    let labels: Vec<&str> = host.split('.').collect();
    match labels.as_slice() {
        ["sqs", region, "amazonaws", ..] => Some((*region).to_owned()),
        [region, "queue", "amazonaws", ..] => Some((*region).to_owned()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn attrs(pairs: &[(QueueAttributeName, &str)]) -> HashMap<QueueAttributeName, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.clone(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn attributes_follow_the_flags() {
        use QueueAttributeName::*;
        assert_eq!(
            attribute_names(false, false),
            vec![ApproximateNumberOfMessages]
        );
        assert_eq!(
            attribute_names(true, false),
            vec![
                ApproximateNumberOfMessages,
                ApproximateNumberOfMessagesNotVisible
            ]
        );
        assert_eq!(
            attribute_names(true, true),
            vec![
                ApproximateNumberOfMessages,
                ApproximateNumberOfMessagesNotVisible,
                ApproximateNumberOfMessagesDelayed
            ]
        );
        assert_eq!(
            attribute_names(false, true),
            vec![
                ApproximateNumberOfMessages,
                ApproximateNumberOfMessagesDelayed
            ]
        );
    }

    // KEDA's TestAWSSQSScalerGetMetrics and TestProcessQueueLengthFromSqsQueueAttributesOutput.
    #[test]
    fn lengths_sum_as_keda_sums_them() {
        use QueueAttributeName::*;
        let all = attrs(&[
            (ApproximateNumberOfMessages, "200"),
            (ApproximateNumberOfMessagesNotVisible, "100"),
            (ApproximateNumberOfMessagesDelayed, "50"),
        ]);
        for (in_flight, delayed, want) in [
            (false, false, 200),
            (true, false, 300),
            (false, true, 250),
            (true, true, 350),
        ] {
            assert_eq!(
                queue_length(Some(&all), &attribute_names(in_flight, delayed)),
                Ok(want)
            );
        }
        let names = attribute_names(true, true);
        assert_eq!(
            queue_length(Some(&attrs(&[])), &names),
            Err("metric ApproximateNumberOfMessages not found in SQS queue attributes".to_owned())
        );
        assert!(queue_length(None, &names).is_err());
        let bad = attrs(&[
            (ApproximateNumberOfMessages, "NotInt"),
            (ApproximateNumberOfMessagesNotVisible, "0"),
            (ApproximateNumberOfMessagesDelayed, "0"),
        ]);
        assert_eq!(
            queue_length(Some(&bad), &names),
            Err(
                "SQS queue attribute ApproximateNumberOfMessages is not an integer: \"NotInt\""
                    .to_owned()
            )
        );
        let big = attrs(&[
            (ApproximateNumberOfMessages, "2147483648"),
            (ApproximateNumberOfMessagesNotVisible, "0"),
            (ApproximateNumberOfMessagesDelayed, "0"),
        ]);
        assert_eq!(queue_length(Some(&big), &names), Ok(2_147_483_648));
    }

    #[test]
    fn queue_names_as_keda_reads_them() {
        let ok = |u: &str| queue_name(u).ok();
        assert_eq!(
            ok("https://sqs.eu-west-1.amazonaws.com/account_id/DeleteArtifactQ").as_deref(),
            Some("DeleteArtifactQ")
        );
        assert_eq!(
            ok("http://127.0.0.1:5055/123456789012/jobs").as_deref(),
            Some("jobs")
        );
        assert_eq!(ok("my-queue").as_deref(), Some("my-queue"));
        assert_eq!(ok("/123/jobs").as_deref(), Some("jobs"));
        for bad in [
            "https://sqs.eu-west-1.amazonaws.com/account_id",
            "https://sqs.eu-west-1.amazonaws.com",
            "https://sqs.eu-west-1.amazonaws.com/account_id/",
            "https://sqs.eu-west-1.amazonaws.com/a/b/c",
        ] {
            assert_eq!(
                queue_name(bad),
                Err("cannot get queueName from queueURL".to_owned()),
                "{bad}"
            );
        }
    }

    #[test]
    fn regions_in_queue_urls() {
        assert_eq!(
            region_of_url("https://sqs.eu-west-1.amazonaws.com/1/q").as_deref(),
            Some("eu-west-1")
        );
        assert_eq!(
            region_of_url("https://us-east-2.queue.amazonaws.com/1/q").as_deref(),
            Some("us-east-2")
        );
        assert_eq!(region_of_url("http://127.0.0.1:5055/1/q"), None);
        assert_eq!(region_of_url("my-queue"), None);
    }
}
