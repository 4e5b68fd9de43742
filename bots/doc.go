// Package bots tells loyal humans from software pretending to be fans
// (F13–F15). It is plain Go: signals are observed into a compact per-fan
// State as events arrive, batch signals (rings of accounts that befriend
// each other, the distribution of reaction times to offers, the reseller
// watch list) are computed by a scheduled job, and Classify turns the
// evidence into a class with the reasons behind it.
//
// A declared agent (F15) is software a fan has openly authorized: its
// actions are attributed to the fan and the agent, its speed is never
// evidence of a disguised bot, and it never goes ahead of a human of the
// same tier by speed alone. An undeclared bot that acts like an agent is
// judged like any other account.
//
// The population generator and the evaluation (population.go, eval.go)
// measure how well Classify separates the classes on synthetic fans.
package bots
