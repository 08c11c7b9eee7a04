package http

default allow = false

allowed_tools := {
  "analyst-agent": {"get_inventory", "list_products"},
  "ops-agent": {"get_inventory", "update_stock", "list_products"},
}

allow {
  input.request.method == "POST"
  caller := input.request.headers["dapr-caller-app-id"]
  body := json.unmarshal(input.request.body)
  body.method == "tools/list"
}

allow {
  input.request.method == "POST"
  caller := input.request.headers["dapr-caller-app-id"]
  body := json.unmarshal(input.request.body)
  body.method == "tools/call"
  allowed_tools[caller][body.params.name]
}
