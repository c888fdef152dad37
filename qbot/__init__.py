"""qbot: chatbots on Qiscus."""
