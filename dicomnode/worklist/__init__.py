"""The reading worklist: items, their ranking, and (to come) the API and web page that show them."""
