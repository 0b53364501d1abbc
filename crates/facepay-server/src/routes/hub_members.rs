//! The hub's members and what guards the money between them, over HTTP.
//! Operators onboard members (currency, settlement account, net debit cap,
//! request rate), record their funds in and out, decide on transfers that
//! screening held, and settle closed windows through the settlement bank.
//! Members look up a payee by alias and quote a payment to its account.

use axum::extract::State;
use axum::response::Response;
use facepay_hub::AliasKind;
use facepay_hub::members::{Standing, Terms};
use facepay_hub::settlement::Settlement;
use facepay_store::hub_members::{FundsDirection, FundsMovement};
use facepay_store::hub_settlement::{Instruction, InstructionState};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::Shared;
use super::hub::{IdPath, QuoteView, TransferKey, TransferView, WindowView, created, ok};
use crate::edge::{ApiError, ApiJson, ApiPath, Command, ErrorResponse, MemberKey, OperatorKey};

// The schemas' bound on amounts and caps is the hub's.
const _: () = assert!(facepay_hub::members::AMOUNT_MINOR_MAX == 1_000_000_000_000_000);

pub fn routes() -> OpenApiRouter<Shared> {
    OpenApiRouter::new()
        .routes(routes!(onboard))
        .routes(routes!(list_members))
        .routes(routes!(move_funds))
        .routes(routes!(release))
        .routes(routes!(refuse))
        .routes(routes!(settle_window))
        .routes(routes!(retry_settlement))
        .routes(routes!(lookup_alias))
        .routes(routes!(quote_account))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MemberRequest {
    /// The network's currency, ISO 4217.
    #[schema(pattern = r"^[A-Z]{3}$")]
    currency: String,
    /// The member's account at the settlement bank.
    #[schema(pattern = r"^[^\u0000]*$", min_length = 1, max_length = 128)]
    settlement_account: String,
    /// The most the member may owe the hub over unsettled windows and its
    /// transfers under way, in minor units (its funds limit it too).
    #[schema(minimum = 0, maximum = 1_000_000_000_000_000_i64)]
    net_debit_cap_minor: i64,
    #[schema(minimum = 1, maximum = 1_000_000)]
    requests_per_minute: i64,
}

impl Command for MemberRequest {}

#[derive(Debug, Serialize, ToSchema)]
pub struct MemberView {
    network_id: String,
    currency: String,
    settlement_account: String,
    net_debit_cap_minor: i64,
    requests_per_minute: i64,
    /// Its funds at the settlement bank.
    funds_minor: i64,
    /// What it may owe now: its net position over unsettled windows and
    /// its payments under way or held.
    exposure_minor: i64,
}

impl From<Standing> for MemberView {
    fn from(s: Standing) -> Self {
        Self {
            network_id: s.member.network_id,
            currency: s.member.currency,
            settlement_account: s.member.settlement_account,
            net_debit_cap_minor: s.member.net_debit_cap_minor,
            requests_per_minute: s.member.requests_per_minute,
            funds_minor: s.funds_minor,
            exposure_minor: s.exposure_minor,
        }
    }
}

#[utoipa::path(
    put,
    path = "/v1/hub/members/{id}",
    tag = "hub",
    summary = "Onboard a member network, or change its terms",
    description = "The network must be one the hub runs. A payment that would take the member past its net debit cap or its funds is refused (`hub_member_cap`) before any network is called; past its request rate, `hub_rate_limited`.",
    params(IdPath),
    request_body = MemberRequest,
    responses(
        (status = 200, description = "The member as it stands.", body = MemberView),
        (status = 404, description = "`hub_unknown_network`.", body = ErrorResponse),
        (status = 422, description = "`hub_bad_member`: another currency than the network's, a cap below what it owes now, ...", body = ErrorResponse),
    ),
    security(("operator_key" = [])),
)]
pub async fn onboard(
    State(s): State<Shared>,
    OperatorKey(operator): OperatorKey,
    ApiPath(path): ApiPath<IdPath>,
    body: ApiJson<MemberRequest>,
) -> Result<Response, ApiError> {
    let r = body.value;
    let terms = Terms {
        currency: r.currency,
        settlement_account: r.settlement_account,
        net_debit_cap_minor: r.net_debit_cap_minor,
        requests_per_minute: r.requests_per_minute,
    };
    let standing = s
        .hub
        .onboard(&operator.actor(), &path.id, terms, s.now_ms())
        .await?;
    Ok(ok(MemberView::from(standing)))
}

#[utoipa::path(
    get,
    path = "/v1/hub/members",
    tag = "hub",
    summary = "The hub's members",
    description = "Each with its terms, funds and what it may owe now.",
    responses((status = 200, description = "The members.", body = [MemberView])),
    security(("operator_key" = [])),
)]
pub async fn list_members(State(s): State<Shared>, _: OperatorKey) -> Result<Response, ApiError> {
    let members: Vec<MemberView> = s.hub.members().await?.into_iter().map(Into::into).collect();
    Ok(ok(members))
}

#[derive(Debug, Clone, Copy, Deserialize, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum FundsDirectionView {
    /// The member put money in at the settlement bank.
    In,
    /// The member took money out.
    Out,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct FundsRequest {
    direction: FundsDirectionView,
    /// In the member's currency, minor units.
    #[schema(minimum = 1, maximum = 1_000_000_000_000_000_i64)]
    amount_minor: i64,
}

impl Command for FundsRequest {}

#[derive(Debug, Serialize, ToSchema)]
pub struct FundsView {
    id: String,
    network_id: String,
    direction: FundsDirectionView,
    amount_minor: i64,
    currency: String,
    created_at_ms: i64,
}

impl From<FundsMovement> for FundsView {
    fn from(m: FundsMovement) -> Self {
        Self {
            id: m.id,
            network_id: m.network_id,
            direction: match m.direction {
                FundsDirection::In => FundsDirectionView::In,
                FundsDirection::Out => FundsDirectionView::Out,
            },
            amount_minor: m.amount_minor,
            currency: m.currency,
            created_at_ms: m.created_at_ms,
        }
    }
}

#[utoipa::path(
    post,
    path = "/v1/hub/members/{id}/funds",
    tag = "hub",
    summary = "Record a member's funds in or out",
    description = "Posted to the ledger against the settlement bank's account. The same Idempotency-Key answers the same movement. Funds that cover what the member may owe cannot go out.",
    params(IdPath, TransferKey),
    request_body = FundsRequest,
    responses(
        (status = 201, description = "The movement.", body = FundsView),
        (status = 404, description = "`hub_unknown_member`.", body = ErrorResponse),
        (status = 409, description = "`hub_member_funds`: that much is not free; `idempotency_key_reused`.", body = ErrorResponse),
        (status = 422, description = "`hub_bad_amount`.", body = ErrorResponse),
    ),
    security(("operator_key" = [])),
)]
pub async fn move_funds(
    State(s): State<Shared>,
    OperatorKey(operator): OperatorKey,
    ApiPath(path): ApiPath<IdPath>,
    key: TransferKey,
    body: ApiJson<FundsRequest>,
) -> Result<Response, ApiError> {
    let direction = match body.value.direction {
        FundsDirectionView::In => FundsDirection::In,
        FundsDirectionView::Out => FundsDirection::Out,
    };
    let movement = s
        .hub
        .move_funds(
            &operator.actor(),
            &path.id,
            &key.0,
            direction,
            body.value.amount_minor,
            s.now_ms(),
        )
        .await?;
    Ok(created(FundsView::from(movement)))
}

#[utoipa::path(
    post,
    path = "/v1/hub/transfers/{id}/release",
    tag = "hub",
    summary = "Release a transfer screening held",
    description = "After the operator's request for information: the transfer runs now across both networks, as it would have.",
    params(IdPath),
    responses(
        (status = 200, description = "The transfer as it ran.", body = TransferView),
        (status = 404, description = "`hub_unknown_transfer`.", body = ErrorResponse),
        (status = 409, description = "`hub_transfer_not_held`.", body = ErrorResponse),
    ),
    security(("operator_key" = [])),
)]
pub async fn release(
    State(s): State<Shared>,
    OperatorKey(operator): OperatorKey,
    ApiPath(path): ApiPath<IdPath>,
) -> Result<Response, ApiError> {
    let t = s
        .hub
        .release(&operator.actor(), &path.id, s.now_ms())
        .await?;
    Ok(ok(TransferView::try_from(t)?))
}

#[utoipa::path(
    post,
    path = "/v1/hub/transfers/{id}/refuse",
    tag = "hub",
    summary = "Refuse a transfer screening held",
    description = "The transfer is reversed with `hub_screening_refused`; no network heard of it.",
    params(IdPath),
    responses(
        (status = 200, description = "The transfer, `reversed`.", body = TransferView),
        (status = 404, description = "`hub_unknown_transfer`.", body = ErrorResponse),
        (status = 409, description = "`hub_transfer_not_held`.", body = ErrorResponse),
    ),
    security(("operator_key" = [])),
)]
pub async fn refuse(
    State(s): State<Shared>,
    OperatorKey(operator): OperatorKey,
    ApiPath(path): ApiPath<IdPath>,
) -> Result<Response, ApiError> {
    let t = s
        .hub
        .refuse(&operator.actor(), &path.id, s.now_ms())
        .await?;
    Ok(ok(TransferView::try_from(t)?))
}

#[derive(Debug, Clone, Copy, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum InstructionStateView {
    Pending,
    Confirmed,
    /// Its attempts ran out: an operator must see to it.
    Failed,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct InstructionView {
    id: String,
    /// The position's ledger account.
    participant: String,
    currency: String,
    /// Positive: the participant pays. Negative: it is paid.
    net_minor: i64,
    settlement_account: String,
    state: InstructionStateView,
    attempts: i64,
    last_error: Option<String>,
    bank_reference: Option<String>,
}

impl From<Instruction> for InstructionView {
    fn from(i: Instruction) -> Self {
        Self {
            id: i.id,
            participant: i.participant,
            currency: i.currency,
            net_minor: i.net_minor,
            settlement_account: i.settlement_account,
            state: match i.state {
                InstructionState::Pending => InstructionStateView::Pending,
                InstructionState::Confirmed => InstructionStateView::Confirmed,
                InstructionState::Failed => InstructionStateView::Failed,
            },
            attempts: i.attempts,
            last_error: i.last_error,
            bank_reference: i.bank_reference,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SettlementView {
    window: WindowView,
    instructions: Vec<InstructionView>,
}

impl TryFrom<Settlement> for SettlementView {
    type Error = ApiError;

    fn try_from(s: Settlement) -> Result<Self, ApiError> {
        Ok(Self {
            window: WindowView::try_from(s.window)?,
            instructions: s.instructions.into_iter().map(Into::into).collect(),
        })
    }
}

#[utoipa::path(
    post,
    path = "/v1/hub/windows/{id}/settle",
    tag = "hub",
    summary = "Settle a closed window through the settlement bank",
    description = "Sends each pending instruction (a pacs.009 per net position) to the settlement bank and records its confirmation. The window is `settled` only when every instruction is confirmed; otherwise it stays `closed`, and settling again retries what is pending. An instruction refused too often is `failed`.",
    params(IdPath),
    responses(
        (status = 200, description = "The window and its instructions.", body = SettlementView),
        (status = 404, description = "`hub_unknown_window`.", body = ErrorResponse),
        (status = 409, description = "`hub_window_not_closed`, or `hub_no_settlement_bank`.", body = ErrorResponse),
    ),
    security(("operator_key" = [])),
)]
pub async fn settle_window(
    State(s): State<Shared>,
    _: OperatorKey,
    ApiPath(path): ApiPath<IdPath>,
) -> Result<Response, ApiError> {
    let settlement = s.hub.settle_window(&path.id, s.now_ms()).await?;
    Ok(ok(SettlementView::try_from(settlement)?))
}

#[utoipa::path(
    post,
    path = "/v1/hub/windows/{id}/retry-settlement",
    tag = "hub",
    summary = "Retry a closed window's failed settlement instructions",
    description = "Once the operator has seen to why the bank refused: each failed instruction gets its attempts again, and the window is settled as with `settle`. Written to the audit log.",
    params(IdPath),
    responses(
        (status = 200, description = "The window and its instructions.", body = SettlementView),
        (status = 404, description = "`hub_unknown_window`.", body = ErrorResponse),
        (status = 409, description = "`hub_window_not_closed`, or `hub_no_settlement_bank`.", body = ErrorResponse),
    ),
    security(("operator_key" = [])),
)]
pub async fn retry_settlement(
    State(s): State<Shared>,
    OperatorKey(operator): OperatorKey,
    ApiPath(path): ApiPath<IdPath>,
) -> Result<Response, ApiError> {
    let settlement = s
        .hub
        .retry_settlement(&operator.actor(), &path.id, s.now_ms())
        .await?;
    Ok(ok(SettlementView::try_from(settlement)?))
}

#[derive(Debug, Clone, Copy, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum AliasKindView {
    /// A mobile number in international form.
    Phone,
    /// A national QR id (PromptPay e-wallet or tax id, VietQR account).
    QrId,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AliasRequest {
    /// The network the payee is in.
    #[schema(pattern = r"^[A-Za-z0-9_.:-]{1,128}$")]
    payee_network: String,
    kind: AliasKindView,
    #[schema(pattern = r"^[^\u0000]*$", min_length = 1, max_length = 128)]
    alias: String,
}

impl Command for AliasRequest {}

#[derive(Debug, Serialize, ToSchema)]
pub struct PayeeView {
    network: String,
    account: String,
    /// The name the payer confirms before paying.
    display_name: String,
    currency: String,
}

#[utoipa::path(
    post,
    path = "/v1/hub/aliases/lookup",
    tag = "hub",
    summary = "Find a payee by alias",
    description = "Asks the payee's network whom the alias names: the account to quote and the name the payer confirms (confirmation of payee).",
    request_body = AliasRequest,
    responses(
        (status = 200, description = "The payee.", body = PayeeView),
        (status = 404, description = "`network_unknown_account`: no payee has that alias; `hub_unknown_network`.", body = ErrorResponse),
        (status = 422, description = "`hub_input_too_long`.", body = ErrorResponse),
        (status = 429, description = "`hub_rate_limited`.", body = ErrorResponse),
    ),
    security(("hub_member_key" = [])),
)]
pub async fn lookup_alias(
    State(s): State<Shared>,
    MemberKey(network): MemberKey,
    body: ApiJson<AliasRequest>,
) -> Result<Response, ApiError> {
    let r = body.value;
    let kind = match r.kind {
        AliasKindView::Phone => AliasKind::Phone,
        AliasKindView::QrId => AliasKind::QrId,
    };
    let party = s
        .hub
        .lookup_alias(&network, (&r.payee_network, kind, &r.alias), s.now_ms())
        .await?;
    Ok(ok(PayeeView {
        network: r.payee_network,
        account: party.account,
        display_name: party.name,
        currency: party.currency.code().to_owned(),
    }))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AccountQuoteRequest {
    /// The payer's account in the calling network.
    #[schema(pattern = r"^[^\u0000]*$", max_length = 128)]
    payer_account: String,
    #[schema(pattern = r"^[A-Za-z0-9_.:-]{1,128}$")]
    payee_network: String,
    /// The account an alias lookup answered.
    #[schema(pattern = r"^[^\u0000]*$", max_length = 128)]
    payee_account: String,
    /// In the payee's currency, major units.
    #[schema(pattern = r"^[0-9]+(\.[0-9]+)?$", max_length = 32)]
    amount: String,
}

impl Command for AccountQuoteRequest {}

#[utoipa::path(
    post,
    path = "/v1/hub/account-quotes",
    tag = "hub",
    summary = "Quote a payment to a payee's account",
    description = "For a payee found by alias: the quote names the payee as its network does. Pay it with `POST /v1/hub/transfers`.",
    request_body = AccountQuoteRequest,
    responses(
        (status = 201, description = "The quote.", body = QuoteView),
        (status = 404, description = "`network_unknown_account`.", body = ErrorResponse),
        (status = 422, description = "`hub_bad_amount`, `network_limit`, `fx_no_rate`, ...", body = ErrorResponse),
        (status = 429, description = "`hub_rate_limited`.", body = ErrorResponse),
    ),
    security(("hub_member_key" = [])),
)]
pub async fn quote_account(
    State(s): State<Shared>,
    MemberKey(network): MemberKey,
    body: ApiJson<AccountQuoteRequest>,
) -> Result<Response, ApiError> {
    let r = body.value;
    let quote = s
        .hub
        .quote_account(
            (&network, &r.payer_account),
            (&r.payee_network, &r.payee_account),
            &r.amount,
            s.now_ms(),
        )
        .await?;
    Ok(created(QuoteView::from(quote)))
}
