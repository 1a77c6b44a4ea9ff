"""/api/v1/billing: records with their payouts and totals."""


def test_billing_totals_and_records(client, settled):
    _receipt, billing = settled
    bill = client.get("/api/v1/billing").json()
    assert bill["currency"] == "EUR"
    assert bill["totals"]["charge"] == billing["charge"] and bill["records"][0]["workload_id"] == "w9"
    assert client.get("/api/v1/billing?workload_id=other").json()["records"] == []
