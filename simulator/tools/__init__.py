"""The simulated tool side of a call: the backend holding each call's records, the HTTP relay
for agents that call tools themselves, and the answers to an agent's tool calls with the
script's scheduled faults applied."""
