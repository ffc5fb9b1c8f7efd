"""Stream transports: Server-Sent Events and WebSocket, carrying the same JSON messages."""
