"""The operator's console: web pages over the responder's history, served by the responder."""
