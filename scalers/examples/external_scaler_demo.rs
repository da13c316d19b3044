//! A tiny external scaler speaking KEDA's `externalscaler.ExternalScaler` protocol, for trying
//! `type: external` / `external-push` (see `examples/scalers/external.yaml`):
//!
//! ```text
//! cargo run -p kedge-scalers --features external --example external_scaler_demo -- 127.0.0.1:50051 12
//! ```
//!
//! It reports the number given on the command line (default 12) for every metric, is active
//! while that number is above zero, names its metric after the trigger's `metricName` metadata
//! (default `demo`) with the target from `targetSize` (default 5), and pushes its activity on
//! `StreamIsActive` every 5 seconds.

use std::pin::Pin;
use std::time::Duration;

use scaler_core::futures_core::Stream;
use scalers::external::proto::external_scaler_server::{ExternalScaler, ExternalScalerServer};
use scalers::external::proto::{
    GetMetricSpecResponse, GetMetricsRequest, GetMetricsResponse, IsActiveResponse, MetricSpec,
    MetricValue, ScaledObjectRef,
};
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status};

struct Demo {
    value: f64,
}

type Responses<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send + 'static>>;

#[tonic::async_trait]
impl ExternalScaler for Demo {
    async fn is_active(
        &self,
        _: Request<ScaledObjectRef>,
    ) -> Result<Response<IsActiveResponse>, Status> {
        Ok(Response::new(IsActiveResponse {
            result: self.value > 0.0,
        }))
    }

    type StreamIsActiveStream = Responses<IsActiveResponse>;

    async fn stream_is_active(
        &self,
        request: Request<ScaledObjectRef>,
    ) -> Result<Response<Self::StreamIsActiveStream>, Status> {
        let r = request.into_inner();
        println!("StreamIsActive from {}/{}", r.namespace, r.name);
        let (tx, rx) = tokio::sync::mpsc::channel(1);
        let active = self.value > 0.0;
        tokio::spawn(async move {
            loop {
                if tx
                    .send(Ok(IsActiveResponse { result: active }))
                    .await
                    .is_err()
                {
                    return;
                }
                tokio::time::sleep(Duration::from_secs(5)).await;
            }
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }

    async fn get_metric_spec(
        &self,
        request: Request<ScaledObjectRef>,
    ) -> Result<Response<GetMetricSpecResponse>, Status> {
        let metadata = request.into_inner().scaler_metadata;
        let name = metadata
            .get("metricName")
            .cloned()
            .unwrap_or_else(|| "demo".into());
        let target = metadata
            .get("targetSize")
            .and_then(|t| t.parse().ok())
            .unwrap_or(5.0);
        Ok(Response::new(GetMetricSpecResponse {
            metric_specs: vec![MetricSpec {
                metric_name: name,
                target_size: 0,
                target_size_float: target,
            }],
        }))
    }

    async fn get_metrics(
        &self,
        request: Request<GetMetricsRequest>,
    ) -> Result<Response<GetMetricsResponse>, Status> {
        let request = request.into_inner();
        Ok(Response::new(GetMetricsResponse {
            metric_values: vec![MetricValue {
                metric_name: request.metric_name,
                metric_value: 0,
                metric_value_float: self.value,
            }],
        }))
    }

    type StreamMetricSpecStream = Responses<GetMetricSpecResponse>;

    async fn stream_metric_spec(
        &self,
        _: Request<ScaledObjectRef>,
    ) -> Result<Response<Self::StreamMetricSpecStream>, Status> {
        Err(Status::unimplemented("StreamMetricSpec"))
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let listen = args.next().unwrap_or_else(|| "127.0.0.1:50051".to_owned());
    let value: f64 = match args.next() {
        Some(v) => v.parse()?,
        None => 12.0,
    };
    println!("external scaler demo on {listen}, reporting {value}");
    tonic::transport::Server::builder()
        .add_service(ExternalScalerServer::new(Demo { value }))
        .serve(listen.parse()?)
        .await?;
    Ok(())
}
