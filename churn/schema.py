"""The Telco customer table's schema: IBM's `WA_Fn-UseC_-Telco-Customer-Churn.csv`, column by
column, in the file's order.

Declared once and used everywhere: the loader validates files against it, the generator takes
its category strings from it, the features read their levels from it, and the API's request
model is generated from it, so none of them can drift from the others.
"""

from __future__ import annotations

from common.schema import Column, TableSchema

LABEL = "Churn"
KEY = "customerID"

# "No" first so the categorical codes of a yes/no column (the label included) are 0/1 = No/Yes.
_YES_NO = ("No", "Yes")
_ADDON = ("No", "Yes", "No internet service")
_LINES = ("No", "Yes", "No phone service")
_CONTRACTS = ("Month-to-month", "One year", "Two year")
_INTERNET = ("DSL", "Fiber optic", "No")
_PAYMENTS = (
    "Electronic check",
    "Mailed check",
    "Bank transfer (automatic)",
    "Credit card (automatic)",
)
# Four $5 support add-ons, then two $10 streaming ones (churn.data's prices rely on this order).
ADDONS = ("OnlineSecurity", "OnlineBackup", "DeviceProtection", "TechSupport")
ADDONS += ("StreamingTV", "StreamingMovies")


# Charge ceilings: IBM's file tops out near $119 a month and $8,700 in total, so these are far
# above any real bill yet far below float32's limit (~3.4e38). Without them a value like 1e39 is
# a finite float64 that passes validation, becomes inf in the float32 model matrix and turns the
# SHAP reason codes into NaN (a 200 with nulls, or a 500 when JSON refuses NaN).
MAX_MONTHLY_CHARGE = 10_000.0
MAX_TENURE_MONTHS = 120
MAX_TOTAL_CHARGE = MAX_MONTHLY_CHARGE * MAX_TENURE_MONTHS


def _yes_no(name: str, description: str, *, required: bool = True) -> Column:
    return Column(name, "category", categories=_YES_NO, required=required, description=description)


TELCO_SCHEMA = TableSchema(
    name="telco_customers",
    key=KEY,
    columns=(
        Column(KEY, "string", description="Customer identifier, e.g. 7590-VHVEG."),
        Column("gender", "category", categories=("Female", "Male"), description="Gender."),
        Column("SeniorCitizen", "int", min=0, max=1, description="1 if aged 65 or over."),
        _yes_no("Partner", "Has a partner."),
        _yes_no("Dependents", "Has dependents."),
        Column("tenure", "int", min=0, max=MAX_TENURE_MONTHS, description="Months as a customer."),
        _yes_no("PhoneService", "Has a phone line."),
        Column("MultipleLines", "category", categories=_LINES, description="Several phone lines."),
        Column("InternetService", "category", categories=_INTERNET, description="Internet type."),
        *(
            Column(name, "category", categories=_ADDON, description=f"Subscribes to {name}.")
            for name in ADDONS
        ),
        Column("Contract", "category", categories=_CONTRACTS, description="Contract term."),
        _yes_no("PaperlessBilling", "Receives bills electronically."),
        Column("PaymentMethod", "category", categories=_PAYMENTS, description="How they pay."),
        Column(
            "MonthlyCharges",
            "float",
            min=0,
            max=MAX_MONTHLY_CHARGE,
            description="Current monthly bill, USD.",
        ),
        # IBM's file writes " " here for the 11 customers with tenure 0 (no bill yet).
        Column(
            "TotalCharges",
            "float",
            min=0,
            max=MAX_TOTAL_CHARGE,
            nullable=True,
            description="Billed to date, USD.",
        ),
        # Optional, so the same schema validates unlabelled data sent for scoring.
        _yes_no(LABEL, "Left within the last month.", required=False),
    ),
)
