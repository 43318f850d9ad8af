"""Customer notifications: render, plan (dunning sequences, reminders) and send emails."""
