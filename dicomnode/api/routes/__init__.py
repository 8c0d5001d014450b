"""HTTP routes, one router per area: the worklist and its page, UPS-RS, operations, the API docs."""
