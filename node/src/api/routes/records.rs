//! Orders and the records around them: pre-orders, stock arrivals, reservations,
//! complaints, callbacks.

use actix_web::{HttpRequest, web};
use serde::Deserialize;
use serde_json::{Value, json};

use super::*;

pub(super) const ORDER_ROLES: &[Role] = &[Role::Agent, Role::Supervisor, Role::Gateway];
pub(super) const STAFF_ROLES: &[Role] = &[Role::Agent, Role::Supervisor];

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct OrderCreateBody {
    caller: String,
    items: Vec<OrderItem>,
    fulfilment: Fulfilment,
    payment: PaymentForm,
    #[serde(default)]
    delivery_note: String,
}

pub(super) async fn order_create(
    state: Data,
    request: HttpRequest,
    body: web::Json<OrderCreateBody>,
) -> ApiResult {
    let actor = authenticate(&state, &request, ORDER_ROLES)?;
    let body = body.into_inner();
    let command = Command::CreateOrder {
        caller: phone(&body.caller)?,
        items: body.items,
        fulfilment: body.fulfilment,
        payment: body.payment,
        delivery_note: body.delivery_note,
    };
    propose_create(&state, &request, actor, command, true).await
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct ListQuery {
    #[serde(default)]
    caller: Option<String>,
    #[serde(default)]
    limit: Option<usize>,
    /// `linearizable` (default) or `local` (see [`super::replicated`]).
    #[serde(default)]
    consistency: Option<replicated::Consistency>,
}

pub(super) fn limit(query: &ListQuery) -> Result<usize, ApiError> {
    list_limit(query.limit, 100, LIST_LIMIT_MAX)
}

pub(super) async fn order_list(
    state: Data,
    request: HttpRequest,
    query: web::Query<ListQuery>,
) -> ApiResult {
    // Gateways look orders up by caller (self-service), never list them all.
    authenticate(&state, &request, STAFF_ROLES)?;
    let limit = limit(&query)?;
    let caller = query.caller.as_deref().map(phone).transpose()?;
    let stamp = read(&state, query.consistency).await?;
    let orders = state.shared.read(|replicated| {
        let orders = match &caller {
            Some(caller) => replicated.orders_by_caller(caller, false),
            None => replicated.orders_recent(limit),
        };
        serde_json::to_value(orders.into_iter().take(limit).collect::<Vec<_>>())
            .unwrap_or(Value::Null)
    });
    Ok(stamp.ok().json(json!({"orders": orders})))
}

pub(super) async fn order_view(
    state: Data,
    request: HttpRequest,
    path: web::Path<u64>,
    query: web::Query<ReadQuery>,
) -> ApiResult {
    authenticate(&state, &request, ORDER_ROLES)?;
    let id = path.into_inner();
    let stamp = read(&state, query.consistency).await?;
    let order = state
        .shared
        .read(|replicated| replicated.order(id).map(serde_json::to_value));
    match order {
        Some(Ok(order)) => Ok(stamp.ok().json(order)),
        Some(Err(error)) => Err(ApiError::Internal(error.to_string())),
        None => Err(ApiError::NotFound(format!("order {id} not found"))),
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct OrderUpdateBody {
    #[serde(default)]
    items: Option<Vec<OrderItem>>,
    #[serde(default)]
    fulfilment: Option<Fulfilment>,
    #[serde(default)]
    payment: Option<PaymentForm>,
    #[serde(default)]
    delivery_note: Option<String>,
}

pub(super) async fn order_update(
    state: Data,
    request: HttpRequest,
    path: web::Path<u64>,
    body: web::Json<OrderUpdateBody>,
) -> ApiResult {
    let actor = authenticate(&state, &request, STAFF_ROLES)?;
    let body = body.into_inner();
    if body.items.is_none()
        && body.fulfilment.is_none()
        && body.payment.is_none()
        && body.delivery_note.is_none()
    {
        return Err(ApiError::BadRequest("nothing to change".to_string()));
    }
    let command = Command::UpdateOrder {
        order: path.into_inner(),
        items: body.items,
        fulfilment: body.fulfilment,
        payment: body.payment,
        delivery_note: body.delivery_note,
    };
    propose(&state, actor, command, false).await
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct OrderStatusBody {
    status: OrderStatus,
}

pub(super) async fn order_status(
    state: Data,
    request: HttpRequest,
    path: web::Path<u64>,
    body: web::Json<OrderStatusBody>,
) -> ApiResult {
    let actor = authenticate(&state, &request, STAFF_ROLES)?;
    let command = Command::ChangeOrderStatus {
        order: path.into_inner(),
        status: body.into_inner().status,
    };
    propose(&state, actor, command, false).await
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct PreOrderBody {
    caller: String,
    sku: String,
    name: String,
    quantity: u32,
    pharmacy: String,
}

pub(super) async fn pre_order_create(
    state: Data,
    request: HttpRequest,
    body: web::Json<PreOrderBody>,
) -> ApiResult {
    let actor = authenticate(&state, &request, ORDER_ROLES)?;
    let body = body.into_inner();
    let command = Command::CreatePreOrder {
        caller: phone(&body.caller)?,
        sku: body.sku,
        name: body.name,
        quantity: body.quantity,
        pharmacy: body.pharmacy,
    };
    propose_create(&state, &request, actor, command, true).await
}

/// The most recent records of one kind (newest first, at most the query's limit), read
/// linearizably, as `{ key: [..] }`.
pub(super) async fn recent_list<T: serde::Serialize + Clone>(
    state: &Data,
    request: &HttpRequest,
    query: &ListQuery,
    roles: &[Role],
    key: &str,
    recent: fn(&ReplicatedState, usize) -> Vec<&T>,
) -> ApiResult {
    authenticate(state, request, roles)?;
    let limit = limit(query)?;
    if query.caller.is_some() {
        return Err(ApiError::BadRequest(format!(
            "`caller` filters orders only, not {key}"
        )));
    }
    let stamp = read(state, query.consistency).await?;
    let items: Vec<T> = state
        .shared
        .read(|replicated| recent(replicated, limit).into_iter().cloned().collect());
    list_response(&stamp, key, items)
}

pub(super) fn list_response<T: serde::Serialize>(
    stamp: &replicated::ReadStamp,
    key: &str,
    items: Vec<T>,
) -> ApiResult {
    let value =
        serde_json::to_value(items).map_err(|error| ApiError::Internal(error.to_string()))?;
    Ok(stamp.ok().json(json!({ key: value })))
}

pub(super) fn one_response<T: serde::Serialize>(
    stamp: &replicated::ReadStamp,
    kind: &str,
    id: u64,
    item: Option<T>,
) -> ApiResult {
    match item {
        Some(item) => Ok(stamp.ok().json(item)),
        None => Err(ApiError::NotFound(format!("{kind} {id} not found"))),
    }
}

pub(super) async fn pre_order_list(
    state: Data,
    request: HttpRequest,
    query: web::Query<ListQuery>,
) -> ApiResult {
    recent_list(
        &state,
        &request,
        &query,
        STAFF_ROLES,
        "pre_orders",
        ReplicatedState::pre_orders_recent,
    )
    .await
}

pub(super) async fn pre_order_view(
    state: Data,
    request: HttpRequest,
    path: web::Path<u64>,
    query: web::Query<ReadQuery>,
) -> ApiResult {
    authenticate(&state, &request, ORDER_ROLES)?;
    let id = path.into_inner();
    let stamp = read(&state, query.consistency).await?;
    one_response(
        &stamp,
        "pre-order",
        id,
        state
            .shared
            .read(|replicated| replicated.pre_order(id).cloned()),
    )
}

pub(super) async fn pre_order_cancel(
    state: Data,
    request: HttpRequest,
    path: web::Path<u64>,
) -> ApiResult {
    let actor = authenticate(&state, &request, STAFF_ROLES)?;
    propose(
        &state,
        actor,
        Command::CancelPreOrder {
            pre_order: path.into_inner(),
        },
        false,
    )
    .await
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct StockArrivalBody {
    sku: String,
    #[serde(default)]
    pharmacy: Option<String>,
}

pub(super) async fn stock_arrival(
    state: Data,
    request: HttpRequest,
    body: web::Json<StockArrivalBody>,
) -> ApiResult {
    let actor = authenticate(&state, &request, STAFF_ROLES)?;
    let body = body.into_inner();
    propose(
        &state,
        actor,
        Command::MarkInStock {
            sku: body.sku,
            pharmacy: body.pharmacy,
        },
        false,
    )
    .await
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct ReservationBody {
    caller: String,
    pharmacy: String,
    items: Vec<OrderItem>,
    expires_at_ms: TimestampMs,
}

pub(super) async fn reservation_create(
    state: Data,
    request: HttpRequest,
    body: web::Json<ReservationBody>,
) -> ApiResult {
    let actor = authenticate(&state, &request, ORDER_ROLES)?;
    let body = body.into_inner();
    let command = Command::CreateReservation {
        caller: phone(&body.caller)?,
        pharmacy: body.pharmacy,
        items: body.items,
        expires_at_ms: body.expires_at_ms,
    };
    propose_create(&state, &request, actor, command, true).await
}

pub(super) async fn reservation_list(
    state: Data,
    request: HttpRequest,
    query: web::Query<ListQuery>,
) -> ApiResult {
    recent_list(
        &state,
        &request,
        &query,
        STAFF_ROLES,
        "reservations",
        ReplicatedState::reservations_recent,
    )
    .await
}

pub(super) async fn reservation_view(
    state: Data,
    request: HttpRequest,
    path: web::Path<u64>,
    query: web::Query<ReadQuery>,
) -> ApiResult {
    authenticate(&state, &request, ORDER_ROLES)?;
    let id = path.into_inner();
    let stamp = read(&state, query.consistency).await?;
    one_response(
        &stamp,
        "reservation",
        id,
        state
            .shared
            .read(|replicated| replicated.reservation(id).cloned()),
    )
}

pub(super) async fn reservation_collect(
    state: Data,
    request: HttpRequest,
    path: web::Path<u64>,
) -> ApiResult {
    let actor = authenticate(&state, &request, STAFF_ROLES)?;
    propose(
        &state,
        actor,
        Command::CollectReservation {
            reservation: path.into_inner(),
        },
        false,
    )
    .await
}

pub(super) async fn reservation_cancel(
    state: Data,
    request: HttpRequest,
    path: web::Path<u64>,
) -> ApiResult {
    let actor = authenticate(&state, &request, STAFF_ROLES)?;
    propose(
        &state,
        actor,
        Command::CancelReservation {
            reservation: path.into_inner(),
        },
        false,
    )
    .await
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct ComplaintBody {
    caller: String,
    #[serde(default)]
    order: Option<u64>,
    text: String,
}

pub(super) async fn complaint_create(
    state: Data,
    request: HttpRequest,
    body: web::Json<ComplaintBody>,
) -> ApiResult {
    let actor = authenticate(&state, &request, STAFF_ROLES)?;
    let body = body.into_inner();
    let command = Command::FileComplaint {
        caller: phone(&body.caller)?,
        order: body.order,
        text: body.text,
    };
    propose_create(&state, &request, actor, command, true).await
}

pub(super) async fn complaint_list(
    state: Data,
    request: HttpRequest,
    query: web::Query<ListQuery>,
) -> ApiResult {
    recent_list(
        &state,
        &request,
        &query,
        &[Role::Supervisor],
        "complaints",
        ReplicatedState::complaints_recent,
    )
    .await
}

pub(super) async fn complaint_view(
    state: Data,
    request: HttpRequest,
    path: web::Path<u64>,
    query: web::Query<ReadQuery>,
) -> ApiResult {
    authenticate(&state, &request, STAFF_ROLES)?;
    let id = path.into_inner();
    let stamp = read(&state, query.consistency).await?;
    one_response(
        &stamp,
        "complaint",
        id,
        state
            .shared
            .read(|replicated| replicated.complaint(id).cloned()),
    )
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct ResolveBody {
    resolution: String,
}

pub(super) async fn complaint_resolve(
    state: Data,
    request: HttpRequest,
    path: web::Path<u64>,
    body: web::Json<ResolveBody>,
) -> ApiResult {
    let actor = authenticate(&state, &request, &[Role::Supervisor])?;
    let command = Command::ResolveComplaint {
        complaint: path.into_inner(),
        resolution: body.into_inner().resolution,
    };
    propose(&state, actor, command, false).await
}

pub(super) async fn callback_list(
    state: Data,
    request: HttpRequest,
    query: web::Query<ListQuery>,
) -> ApiResult {
    recent_list(
        &state,
        &request,
        &query,
        &[Role::Supervisor, Role::Gateway],
        "callbacks",
        ReplicatedState::callbacks_recent,
    )
    .await
}

pub(super) async fn callback_view(
    state: Data,
    request: HttpRequest,
    path: web::Path<u64>,
    query: web::Query<ReadQuery>,
) -> ApiResult {
    authenticate(
        &state,
        &request,
        &[Role::Supervisor, Role::Gateway, Role::Agent],
    )?;
    let id = path.into_inner();
    let stamp = read(&state, query.consistency).await?;
    one_response(
        &stamp,
        "callback",
        id,
        state
            .shared
            .read(|replicated| replicated.callback(id).cloned()),
    )
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct CallbackOutcomeBody {
    outcome: CallbackOutcome,
}

pub(super) async fn callback_outcome(
    state: Data,
    request: HttpRequest,
    path: web::Path<u64>,
    body: web::Json<CallbackOutcomeBody>,
) -> ApiResult {
    let actor = authenticate(&state, &request, &[Role::Gateway, Role::Supervisor])?;
    let command = Command::RecordCallbackAttempt {
        callback: path.into_inner(),
        outcome: body.into_inner().outcome,
    };
    propose_create(&state, &request, actor, command, false).await
}
