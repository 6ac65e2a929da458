//! `chronicle token create|list|revoke`, against the data directory or a running server.

use anyhow::{Context, anyhow, bail};
use chronicle_api::new_token;
use chronicle_domain::format_timestamp;
use chronicle_store::{Scope, Store, TokenRecord};
use serde_json::{Value, json};
use time::OffsetDateTime;

use crate::data_dir::DataDir;
use crate::{TokenArgs, TokenCommand, TokenTarget};

/// Where token commands act.
enum Target {
    Local(Store),
    Remote {
        client: reqwest::Client,
        url: String,
        token: String,
    },
}

impl Target {
    async fn open(target: &TokenTarget) -> anyhow::Result<(Target, Option<DataDir>)> {
        match &target.remote.url {
            Some(url) => {
                let token =
                    target.remote.token.clone().context(
                        "--url needs an admin token: pass --token or set CHRONICLE_TOKEN",
                    )?;
                let url = url.trim_end_matches('/').to_owned();
                Ok((
                    Target::Remote {
                        client: reqwest::Client::new(),
                        url,
                        token,
                    },
                    None,
                ))
            }
            None => {
                let data =
                    DataDir::open(&target.storage.data, target.storage.database_url.as_deref())?;
                let store = data.open_store(&target.storage).await?;
                Ok((Target::Local(store), Some(data)))
            }
        }
    }

    async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> anyhow::Result<Value> {
        let Target::Remote { client, url, token } = self else {
            unreachable!("only remote targets call")
        };
        let mut request = client
            .request(method, format!("{url}{path}"))
            .bearer_auth(token);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request
            .send()
            .await
            .with_context(|| format!("cannot reach {url}"))?;
        let status = response.status();
        let answer: Value = response.json().await.unwrap_or(Value::Null);
        if !status.is_success() {
            let message = answer["error"]["message"].as_str().unwrap_or("no message");
            bail!("{path}: {message} ({status})");
        }
        Ok(answer)
    }

    async fn close(self) {
        if let Target::Local(store) = self {
            store.shutdown().await;
        }
    }
}

fn print_record(record: &TokenRecord) {
    let workspace = record.workspace.as_deref().unwrap_or("(all)");
    let scopes: Vec<&str> = record.scopes.iter().map(|scope| scope.name()).collect();
    let state = match (&record.revoked_at, &record.expires_at) {
        (Some(at), _) => format!("revoked {at}"),
        (None, Some(at)) => format!("expires {at}"),
        (None, None) => "no expiry".to_owned(),
    };
    outln!(
        "{}  {:<20} {:<14} {:<24} {}…  {state}",
        record.id,
        record.name,
        workspace,
        scopes.join(","),
        record.prefix
    );
}

pub async fn token(args: TokenArgs) -> anyhow::Result<()> {
    let (target, _data) = Target::open(&args.target).await?;
    let outcome = run(&target, args.command).await;
    target.close().await;
    outcome
}

async fn run(target: &Target, command: TokenCommand) -> anyhow::Result<()> {
    match command {
        TokenCommand::Create {
            name,
            workspace,
            scope,
            expires_at,
        } => {
            let (record, value) = match target {
                Target::Local(store) => {
                    let (token, value) = new_token(
                        &name,
                        workspace,
                        scope,
                        expires_at.as_deref(),
                        OffsetDateTime::now_utc(),
                    )
                    .map_err(|error| anyhow!("{error}"))?;
                    (store.create_token(token).await?, value)
                }
                Target::Remote { .. } => {
                    let body = json!({"name": name, "workspace": workspace, "scopes": scope, "expires_at": expires_at});
                    let answer = target
                        .call(reqwest::Method::POST, "/v1/tokens", Some(body))
                        .await?;
                    let value = answer["token"]
                        .as_str()
                        .context("the server answered no token")?
                        .to_owned();
                    (record_from(&answer)?, value)
                }
            };
            print_record(&record);
            outln!("token (shown once; Chronicle keeps only its hash): {value}");
        }
        TokenCommand::List => {
            let records = match target {
                Target::Local(store) => store.list_tokens().await?,
                Target::Remote { .. } => {
                    let answer = target
                        .call(reqwest::Method::GET, "/v1/tokens", None)
                        .await?;
                    answer["items"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .map(record_from)
                        .collect::<anyhow::Result<_>>()?
                }
            };
            if records.is_empty() {
                outln!("no tokens");
            }
            records.iter().for_each(print_record);
        }
        TokenCommand::Revoke { id } => {
            let record = match target {
                Target::Local(store) => store
                    .revoke_token(&id, &format_timestamp(OffsetDateTime::now_utc()))
                    .await?
                    .with_context(|| format!("no token {id}"))?,
                Target::Remote { .. } => record_from(
                    &target
                        .call(reqwest::Method::DELETE, &format!("/v1/tokens/{id}"), None)
                        .await?,
                )?,
            };
            print_record(&record);
        }
    }
    Ok(())
}

fn record_from(value: &Value) -> anyhow::Result<TokenRecord> {
    let text = |field: &str| value[field].as_str().map(str::to_owned);
    Ok(TokenRecord {
        id: text("id").context("a token without id")?,
        name: text("name").unwrap_or_default(),
        workspace: text("workspace"),
        scopes: serde_json::from_value::<Vec<Scope>>(value["scopes"].clone()).unwrap_or_default(),
        prefix: text("prefix").unwrap_or_default(),
        created_at: text("created_at").unwrap_or_default(),
        expires_at: text("expires_at"),
        revoked_at: text("revoked_at"),
    })
}
