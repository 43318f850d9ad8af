"""SMS, the second notification channel: Twilio sender, segments, opt-outs, STOP/START replies."""
