"""JSON API plumbing for every endpoint: answers and errors, bodies, query parameters, auth."""
