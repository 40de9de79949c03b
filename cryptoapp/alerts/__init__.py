"""Price alerts: rules on the price stream, fired once per crossing, stored and delivered to webhooks."""
