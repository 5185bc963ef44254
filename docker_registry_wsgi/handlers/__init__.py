"""HTTP handlers, one module per endpoint group: each turns a request into calls on the content
layer and their results into a response."""
