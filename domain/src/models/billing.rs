//! Billing: plan, seats, payment methods, invoices and their status, usage per meter and
//! period, quota alerts. One row per workspace.

use serde::{Deserialize, Serialize};

use super::{ReadModel, State};
use crate::catalogue::{EventData, Plan};
use crate::envelope::RecordedEvent;

/// A card on file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PaymentMethod {
    pub brand: String,
    pub last4: String,
    pub default: bool,
}

/// An invoice and its status: `due`, `paid` or `voided`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Invoice {
    pub invoice: String,
    pub amount_cents: u64,
    pub currency: String,
    pub period_start: String,
    pub period_end: String,
    pub issued_at: String,
    pub status: String,
    pub refunded_cents: u64,
}

/// Usage of one meter in one period, summed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Usage {
    pub meter: String,
    pub period: String,
    pub quantity: u64,
}

/// A quota threshold crossed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QuotaAlert {
    pub quota: String,
    pub threshold_pct: u16,
    pub used: u64,
    pub limit: u64,
    pub at: String,
}

/// A workspace's billing.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Billing {
    pub workspace: String,
    pub plan: Option<Plan>,
    pub seats: u64,
    pub payment_methods: Vec<PaymentMethod>,
    /// In the order they were issued.
    pub invoices: Vec<Invoice>,
    /// Sorted by meter, then period.
    pub usage: Vec<Usage>,
    pub quota_alerts: Vec<QuotaAlert>,
    pub grace_period_ends_at: Option<String>,
    pub failed_payments: u64,
}

impl Billing {
    /// Returns the billing of a workspace nothing was billed to yet.
    pub fn empty(workspace: &str) -> Billing {
        Billing {
            workspace: workspace.to_owned(),
            plan: None,
            seats: 0,
            payment_methods: Vec::new(),
            invoices: Vec::new(),
            usage: Vec::new(),
            quota_alerts: Vec::new(),
            grace_period_ends_at: None,
            failed_payments: 0,
        }
    }

    fn invoice(&mut self, invoice: &str) -> Option<&mut Invoice> {
        self.invoices
            .iter_mut()
            .rev()
            .find(|i| i.invoice == invoice)
    }
}

/// The billing model, keyed by workspace.
#[derive(Debug)]
pub struct BillingModel;

impl ReadModel for BillingModel {
    const NAME: &'static str = "billing";
    type Row = Billing;

    fn keys(event: &RecordedEvent, _data: &EventData) -> Vec<String> {
        let billed =
            event.event_type.starts_with("billing.") || event.event_type == "workspace.created";
        match (&event.workspace, billed) {
            (Some(workspace), true) => vec![workspace.clone()],
            _ => Vec::new(),
        }
    }

    fn apply(rows: &mut State<Billing>, event: &RecordedEvent, data: &EventData) {
        let Some(workspace) = &event.workspace else {
            return;
        };
        if Self::keys(event, data).is_empty() {
            return;
        }
        let billing = rows
            .entry(workspace.clone())
            .or_insert_with(|| Billing::empty(workspace));
        match data {
            EventData::WorkspaceCreated(created) => billing.plan = Some(created.plan),
            EventData::BillingPlanChanged(changed) => billing.plan = Some(changed.to),
            EventData::BillingSeatsChanged(changed) => billing.seats = changed.to,
            EventData::BillingPaymentMethodAdded(added) => {
                let default = added.default.unwrap_or(billing.payment_methods.is_empty());
                if default {
                    billing
                        .payment_methods
                        .iter_mut()
                        .for_each(|m| m.default = false);
                }
                billing
                    .payment_methods
                    .retain(|m| m.last4 != added.last4.as_str());
                billing.payment_methods.push(PaymentMethod {
                    brand: added.brand.as_str().to_owned(),
                    last4: added.last4.as_str().to_owned(),
                    default,
                });
            }
            EventData::BillingPaymentMethodRemoved(removed) => {
                billing
                    .payment_methods
                    .retain(|m| m.last4 != removed.last4.as_str());
            }
            EventData::BillingInvoiceIssued(issued) => billing.invoices.push(Invoice {
                invoice: issued.invoice.as_str().to_owned(),
                amount_cents: issued.amount_cents,
                currency: issued.currency.as_str().to_owned(),
                period_start: issued.period_start.as_str().to_owned(),
                period_end: issued.period_end.as_str().to_owned(),
                issued_at: event.occurred_at.clone(),
                status: "due".into(),
                refunded_cents: 0,
            }),
            EventData::BillingPaymentSucceeded(paid) => {
                if let Some(invoice) = billing.invoice(paid.invoice.as_str()) {
                    invoice.status = "paid".into();
                }
                billing.grace_period_ends_at = None;
            }
            EventData::BillingPaymentFailed(_) => billing.failed_payments += 1,
            EventData::BillingInvoiceVoided(voided) => {
                if let Some(invoice) = billing.invoice(voided.invoice.as_str()) {
                    invoice.status = "voided".into();
                }
            }
            EventData::BillingRefundIssued(refund) => {
                if let Some(invoice) = billing.invoice(refund.invoice.as_str()) {
                    invoice.refunded_cents += refund.amount_cents;
                }
            }
            EventData::BillingGracePeriodEntered(grace) => {
                billing.grace_period_ends_at = Some(grace.ends_at.as_str().to_owned());
            }
            EventData::BillingUsageRecorded(usage) => {
                let (meter, period) = (usage.meter.as_str(), usage.period.as_str());
                match billing.usage.binary_search_by(|u| {
                    (u.meter.as_str(), u.period.as_str()).cmp(&(meter, period))
                }) {
                    Ok(index) => billing.usage[index].quantity += usage.quantity,
                    Err(index) => billing.usage.insert(
                        index,
                        Usage {
                            meter: meter.to_owned(),
                            period: period.to_owned(),
                            quantity: usage.quantity,
                        },
                    ),
                }
            }
            EventData::BillingQuotaThresholdCrossed(crossed) => {
                billing.quota_alerts.push(QuotaAlert {
                    quota: crossed.quota.as_str().to_owned(),
                    threshold_pct: crossed.threshold_pct.get(),
                    used: crossed.used,
                    limit: crossed.limit,
                    at: event.occurred_at.clone(),
                })
            }
            _ => {}
        }
    }

    fn workspace(row: &Billing) -> &str {
        &row.workspace
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::catalogue::minimal_example;
    use crate::models::fold;
    use crate::models::test_support::event;

    #[test]
    fn invoices_move_from_due_to_paid_or_voided_and_usage_sums() {
        let e = |position, event_type: &str, data| {
            event(position, "billing-ws_1", event_type, "ws_1", data)
        };
        let issued = |invoice: &str| {
            let mut data = minimal_example("billing.invoice_issued").unwrap();
            data["invoice"] = json!(invoice);
            data
        };
        let usage = json!({"meter": "minutes", "quantity": 5, "period": "2026-09"});
        let events = [
            e(
                1,
                "billing.payment_method_added",
                json!({"brand": "visa", "last4": "4242"}),
            ),
            e(
                2,
                "billing.payment_method_added",
                json!({"brand": "mc", "last4": "5555", "default": true}),
            ),
            e(3, "billing.invoice_issued", issued("inv_1")),
            e(4, "billing.invoice_issued", issued("inv_2")),
            e(
                5,
                "billing.payment_succeeded",
                json!({"amount_cents": 4900, "currency": "EUR", "invoice": "inv_1"}),
            ),
            e(6, "billing.invoice_voided", json!({"invoice": "inv_2"})),
            e(7, "billing.usage_recorded", usage.clone()),
            e(8, "billing.usage_recorded", usage),
            e(
                9,
                "billing.plan_changed",
                json!({"from": "team_starter", "to": "team_scale"}),
            ),
        ];
        let billing = &fold::<BillingModel>(&events)["ws_1"];
        assert_eq!(billing.plan, Some(Plan::TeamScale));
        let defaults: Vec<bool> = billing.payment_methods.iter().map(|m| m.default).collect();
        assert_eq!(defaults, [false, true]);
        let statuses: Vec<&str> = billing.invoices.iter().map(|i| i.status.as_str()).collect();
        assert_eq!(statuses, ["paid", "voided"]);
        assert_eq!(billing.usage[0].quantity, 10);
    }
}
