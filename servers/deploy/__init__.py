"""The deploy server: one honest go / no-go before shipping."""
