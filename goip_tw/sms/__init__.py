"""SMS: the durable outgoing queue and router, received SMS, forwarding, commands, USSD."""
