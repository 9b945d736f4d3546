//! The API methods, one file each: find `method=X` in `X.rs`.
//!
//! Every method file defines a request struct with `parse(&Params)`, which checks the method's own
//! parameters and nothing else, and `apply(self, &Ctx)`, which does the work and returns a [`Reply`].
//! Authentication, limits and encodings have already been dealt with by the dispatcher.
//!
//! Vendor methods not listed here (market) answer `-5 invalid_method` until they exist.

use serde::Serialize;
use skingate_core::project::Project;
use skingate_types::api::method;
use skingate_types::deposits::method as deposit;
use skingate_types::envelope::{GlobalError, STATUS_SUCCESS};

use super::params::Params;
use crate::error::ApiError;
use crate::state::AppState;

pub mod balance;
pub mod balance_history;
pub mod currencies;
pub mod status;
pub mod webhook_attempts;
pub mod webhook_deliveries;
pub mod webhook_recover;
pub mod webhook_resend;
// Deposits (spec §4).
pub mod callback_error_list;
pub mod create;
pub mod create_from_user_inventory;
pub mod offer_approve;
pub mod orders;
pub mod orderstatus;
pub mod test_complete_hold;
pub mod user_inventory;

/// Everything a method may use while applying.
#[derive(Debug)]
pub struct Ctx<'a> {
    /// The running gateway.
    pub state: &'a AppState,
    /// The authenticated project.
    pub project: &'a Project,
    /// The request's parameters.
    pub params: &'a Params,
    /// The `Idempotency-Key` header, if sent.
    pub idempotency_key: Option<&'a str>,
}

/// A rendered success answer.
#[derive(Debug)]
pub struct Reply {
    /// The JSON body.
    pub body: Vec<u8>,
    /// Whether it is the stored answer of an earlier identical write.
    pub replayed: bool,
}

#[derive(Serialize)]
struct Success<'a, T> {
    status: &'static str,
    #[serde(flatten)]
    body: &'a T,
}

impl Reply {
    /// `{"status":"success", ...body}`.
    pub fn success<T: Serialize>(body: &T) -> Result<Reply, ApiError> {
        let body = serde_json::to_vec(&Success { status: STATUS_SUCCESS, body }).map_err(ApiError::internal)?;
        Ok(Reply { body, replayed: false })
    }
}

/// A parsed call of one method.
#[derive(Debug)]
pub enum Method {
    /// `status`
    Status(status::Status),
    /// `balance`
    Balance(balance::Balance),
    /// `currencies`
    Currencies(currencies::Currencies),
    /// `balance_history` (alias `money_history`)
    BalanceHistory(balance_history::BalanceHistory),
    /// `webhook_deliveries`
    WebhookDeliveries(webhook_deliveries::WebhookDeliveries),
    /// `webhook_attempts`
    WebhookAttempts(webhook_attempts::WebhookAttempts),
    /// `webhook_resend`
    WebhookResend(webhook_resend::WebhookResend),
    /// `webhook_recover`
    WebhookRecover(webhook_recover::WebhookRecover),
    /// `create`
    Create(create::Create),
    /// `orderstatus`
    OrderStatus(orderstatus::OrderStatus),
    /// `orders`
    Orders(orders::Orders),
    /// `user_inventory`
    UserInventory(user_inventory::UserInventory),
    /// `create_from_user_inventory`
    CreateFromUserInventory(create_from_user_inventory::CreateFromUserInventory),
    /// `offer_approve`
    OfferApprove(offer_approve::OfferApprove),
    /// `callback_error_list`
    CallbackErrorList(callback_error_list::CallbackErrorList),
    /// `test_complete_hold` (test mode)
    TestCompleteHold(test_complete_hold::TestCompleteHold),
}

impl Method {
    /// Picks the method by name and parses its parameters.
    pub fn parse(name: &str, params: &Params) -> Result<Method, ApiError> {
        match name {
            method::STATUS => Ok(Method::Status(status::Status::parse(params)?)),
            method::BALANCE => Ok(Method::Balance(balance::Balance::parse(params)?)),
            method::CURRENCIES => Ok(Method::Currencies(currencies::Currencies::parse(params)?)),
            method::BALANCE_HISTORY | balance_history::ALIAS => {
                Ok(Method::BalanceHistory(balance_history::BalanceHistory::parse(params)?))
            }
            method::WEBHOOK_DELIVERIES => {
                Ok(Method::WebhookDeliveries(webhook_deliveries::WebhookDeliveries::parse(params)?))
            }
            method::WEBHOOK_ATTEMPTS => Ok(Method::WebhookAttempts(webhook_attempts::WebhookAttempts::parse(params)?)),
            method::WEBHOOK_RESEND => Ok(Method::WebhookResend(webhook_resend::WebhookResend::parse(params)?)),
            method::WEBHOOK_RECOVER => Ok(Method::WebhookRecover(webhook_recover::WebhookRecover::parse(params)?)),
            deposit::CREATE => Ok(Method::Create(create::Create::parse(params)?)),
            deposit::ORDERSTATUS => Ok(Method::OrderStatus(orderstatus::OrderStatus::parse(params)?)),
            deposit::ORDERS => Ok(Method::Orders(orders::Orders::parse(params)?)),
            deposit::USER_INVENTORY => Ok(Method::UserInventory(user_inventory::UserInventory::parse(params)?)),
            deposit::CREATE_FROM_USER_INVENTORY => {
                Ok(Method::CreateFromUserInventory(create_from_user_inventory::CreateFromUserInventory::parse(params)?))
            }
            deposit::OFFER_APPROVE => Ok(Method::OfferApprove(offer_approve::OfferApprove::parse(params)?)),
            deposit::CALLBACK_ERROR_LIST => {
                Ok(Method::CallbackErrorList(callback_error_list::CallbackErrorList::parse(params)?))
            }
            deposit::TEST_COMPLETE_HOLD => {
                Ok(Method::TestCompleteHold(test_complete_hold::TestCompleteHold::parse(params)?))
            }
            _ => Err(GlobalError::InvalidMethod.into()),
        }
    }

    /// Runs the call.
    pub async fn apply(self, ctx: &Ctx<'_>) -> Result<Reply, ApiError> {
        match self {
            Method::Status(m) => m.apply(ctx).await,
            Method::Balance(m) => m.apply(ctx).await,
            Method::Currencies(m) => m.apply(ctx).await,
            Method::BalanceHistory(m) => m.apply(ctx).await,
            Method::WebhookDeliveries(m) => m.apply(ctx).await,
            Method::WebhookAttempts(m) => m.apply(ctx).await,
            Method::WebhookResend(m) => m.apply(ctx).await,
            Method::WebhookRecover(m) => m.apply(ctx).await,
            Method::Create(m) => m.apply(ctx).await,
            Method::OrderStatus(m) => m.apply(ctx).await,
            Method::Orders(m) => m.apply(ctx).await,
            Method::UserInventory(m) => m.apply(ctx).await,
            Method::CreateFromUserInventory(m) => m.apply(ctx).await,
            Method::OfferApprove(m) => m.apply(ctx).await,
            Method::CallbackErrorList(m) => m.apply(ctx).await,
            Method::TestCompleteHold(m) => m.apply(ctx).await,
        }
    }
}
