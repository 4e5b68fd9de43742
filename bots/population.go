package bots

import (
	"cmp"
	"fmt"
	"math"
	"math/rand/v2"
	"time"
)

// Kind is what a generated account really is.
type Kind string

// The kinds of account the population generator makes.
const (
	KindHuman      Kind = "human"
	KindNaiveBot   Kind = "naive_bot"   // few friends, buys in bursts, reacts in milliseconds
	KindCarefulBot Kind = "careful_bot" // bought a fake social history, paces its purchases, still reacts fast
	KindRing       Kind = "ring"        // fake friends who befriend and talk to each other
	KindReseller   Kind = "reseller"    // a person buying far more than a fan, across cities
	KindAgent      Kind = "agent"       // a human with a declared agent that redeems for them
)

// Truth is the class an account of kind k should get. Resellers are people,
// so they are suspect rather than automated: marketers review them.
func (k Kind) Truth() Class {
	switch k {
	case KindNaiveBot, KindCarefulBot, KindRing:
		return Automated
	case KindReseller:
		return Suspect
	}
	return Human
}

// Purchase is one generated ticket purchase.
type Purchase struct {
	ID       string
	At       time.Time
	Lat, Lon float64
}

// Account is one generated account and its history.
type Account struct {
	ID          string
	Kind        Kind
	FriendCount int64
	Purchases   []Purchase
	Reactions   []Reaction
	Agent       bool // has a declared agent
	Watched     bool // on the reseller watch list
	TooGood     int  // crossings above an upper threshold
}

// Population is a generated population.
type Population struct {
	Accounts []Account
	Ties     []Tie
}

// PopulationConfig says how many accounts of each kind to make.
type PopulationConfig struct {
	Humans, NaiveBots, CarefulBots, Resellers, Agents int
	Rings, RingSize                                   int
	// WatchedShare is the share of resellers marketers have put on the
	// watch list; the rest must be found by their behaviour.
	WatchedShare float64
	Seed         uint64
	// Start is when the generated year of history begins.
	Start time.Time
}

// DefaultPopulation is the population the targets are judged on.
func DefaultPopulation() PopulationConfig {
	return PopulationConfig{Humans: 20000, NaiveBots: 400, CarefulBots: 300, Resellers: 150, Agents: 400,
		Rings: 20, RingSize: 12, WatchedShare: 0.3, Seed: 1}
}

type city struct{ lat, lon float64 }

// Cities where shows take place; a fan mostly goes to shows near home.
var cities = []city{
	{51.51, -0.13}, {48.86, 2.35}, {52.52, 13.40}, {40.71, -74.01}, {34.05, -118.24}, {41.88, -87.63},
	{35.68, 139.69}, {-33.87, 151.21}, {19.43, -99.13}, {-23.55, -46.63}, {55.76, 37.62}, {43.65, -79.38},
	{53.48, -2.24}, {45.46, 9.19}, {40.42, -3.70}, {59.33, 18.07},
}

// Generate makes a population with realistic noise: some people have few
// friends or a burst of purchases for a festival, a few redeem quickly, a
// few buy tickets in two cities an hour apart (for a trip they plan); bots
// add jitter, and careful ones buy friends and pace themselves.
func Generate(cfg PopulationConfig) Population {
	cfg.Start = cmp.Or(cfg.Start, time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC))
	rng := rand.New(rand.NewPCG(cfg.Seed, cfg.Seed+1))
	g := &generator{cfg: cfg, rng: rng}
	var pop Population
	add := func(n int, k Kind, make func(*Account)) {
		for i := 0; i < n; i++ {
			a := Account{ID: fmt.Sprintf("%s-%d", k, i), Kind: k}
			make(&a)
			pop.Accounts = append(pop.Accounts, a)
		}
	}
	add(cfg.Humans, KindHuman, g.human)
	add(cfg.Agents, KindAgent, func(a *Account) { g.human(a); g.agent(a) })
	add(cfg.NaiveBots, KindNaiveBot, g.naive)
	add(cfg.CarefulBots, KindCarefulBot, g.careful)
	add(cfg.Resellers, KindReseller, g.reseller)
	humans := cfg.Humans + cfg.Agents
	// People befriend people: a few friends each on the platform, most of
	// their friends elsewhere (friend_count counts those too).
	for i := 0; i < humans; i++ {
		for j, n := 0, 1+rng.IntN(6); j < n; j++ {
			k := rng.IntN(humans)
			if k != i {
				pop.Ties = append(pop.Ties, Tie{A: pop.Accounts[i].ID, B: pop.Accounts[k].ID, Weight: float64(1 + rng.IntN(5))})
			}
		}
	}
	// Careful bots follow real people, who do not talk back much.
	for i := humans + cfg.NaiveBots; i < humans+cfg.NaiveBots+cfg.CarefulBots; i++ {
		for j := 0; j < 5; j++ {
			pop.Ties = append(pop.Ties, Tie{A: pop.Accounts[i].ID, B: pop.Accounts[rng.IntN(humans)].ID, Weight: 1})
		}
	}
	for r := 0; r < cfg.Rings; r++ {
		first := len(pop.Accounts)
		add(cfg.RingSize, KindRing, g.ringMember)
		for i := first; i < len(pop.Accounts); i++ {
			pop.Accounts[i].ID = fmt.Sprintf("ring-%d-%d", r, i-first)
		}
		for i := first; i < len(pop.Accounts); i++ {
			for j := i + 1; j < len(pop.Accounts); j++ {
				if rng.Float64() < 0.8 { // most, not all: rings are built by scripts with gaps
					pop.Ties = append(pop.Ties, Tie{A: pop.Accounts[i].ID, B: pop.Accounts[j].ID, Weight: float64(2 + rng.IntN(10))})
				}
			}
			if rng.Float64() < 0.3 { // the odd tie to a real person, for cover
				pop.Ties = append(pop.Ties, Tie{A: pop.Accounts[i].ID, B: pop.Accounts[rng.IntN(humans)].ID, Weight: 1})
			}
		}
	}
	return pop
}

type generator struct {
	cfg PopulationConfig
	rng *rand.Rand
}

func (g *generator) at(day float64) time.Time {
	return g.cfg.Start.Add(time.Duration(day * float64(24*time.Hour)))
}

func (g *generator) near(c city) (float64, float64) {
	return c.lat + g.rng.NormFloat64()*0.05, c.lon + g.rng.NormFloat64()*0.05
}

func (g *generator) purchase(a *Account, at time.Time, c city) {
	lat, lon := g.near(c)
	a.Purchases = append(a.Purchases, Purchase{ID: fmt.Sprintf("%s/p%d", a.ID, len(a.Purchases)), At: at, Lat: lat, Lon: lon})
}

// lognormal returns a value whose median is median and whose log has the
// standard deviation sigma.
func (g *generator) lognormal(median, sigma float64) float64 {
	return median * math.Exp(g.rng.NormFloat64()*sigma)
}

func (g *generator) reactions(a *Account, n int, medianMs, sigma float64) {
	for i := 0; i < n; i++ {
		a.Reactions = append(a.Reactions, Reaction{Ms: int64(g.lognormal(medianMs, sigma))})
	}
}

func (g *generator) human(a *Account) {
	a.FriendCount = int64(g.lognormal(180, 1.1)) // a few percent under 25: new or private people
	home := cities[g.rng.IntN(len(cities))]
	day := g.rng.Float64() * 30
	for n := g.rng.IntN(9); n > 0; n-- {
		c := home
		if g.rng.Float64() < 0.15 {
			c = cities[g.rng.IntN(len(cities))] // a trip
		}
		g.purchase(a, g.at(day), c)
		day += 1 + g.rng.ExpFloat64()*40
	}
	switch r := g.rng.Float64(); {
	case r < 0.01: // a festival weekend: many tickets in a day
		for i := 0; i < 4+g.rng.IntN(4); i++ {
			g.purchase(a, g.at(day+float64(i)/48), home)
		}
	case r < 0.03: // planning a trip: two cities minutes apart
		g.purchase(a, g.at(day), home)
		g.purchase(a, g.at(day+0.01), cities[g.rng.IntN(len(cities))])
	}
	// People read a text and tap through in tens of seconds; some are quick.
	g.reactions(a, g.rng.IntN(7), 45000, 1.0)
	if g.rng.Float64() < 0.2 {
		a.TooGood = g.rng.IntN(2) // superfans beat upper thresholds too
	}
}

func (g *generator) agent(a *Account) {
	a.Agent = true
	// The agent redeems in a fraction of a second, on the fan's behalf.
	for i, n := 0, 3+g.rng.IntN(6); i < n; i++ {
		a.Reactions = append(a.Reactions, Reaction{Ms: int64(g.lognormal(300, 0.5)), ByAgent: true})
	}
}

func (g *generator) naive(a *Account) {
	a.FriendCount = int64(g.rng.IntN(15))
	day := g.rng.Float64() * 300
	for burst := 0; burst < 1+g.rng.IntN(3); burst++ {
		for i := 0; i < 5+g.rng.IntN(20); i++ {
			g.purchase(a, g.at(day+float64(i)/200), cities[g.rng.IntN(len(cities))])
		}
		day += 10 + g.rng.Float64()*40
	}
	g.reactions(a, 2+g.rng.IntN(8), 250, 0.6)
	a.TooGood = g.rng.IntN(4)
}

func (g *generator) careful(a *Account) {
	a.FriendCount = int64(g.lognormal(150, 0.6))
	day := g.rng.Float64() * 100
	for i := 0; i < 3+g.rng.IntN(8); i++ {
		c := cities[g.rng.IntN(len(cities))]
		g.purchase(a, g.at(day), c)
		day += 0.3 + g.rng.Float64()*3 // paced under the rate limit, anywhere in the world
	}
	// Adds human-looking delay, but scripts are quicker than reading.
	g.reactions(a, 3+g.rng.IntN(8), 900, 0.4)
	a.TooGood = g.rng.IntN(2)
}

func (g *generator) ringMember(a *Account) {
	a.FriendCount = int64(20 + g.rng.IntN(40))
	day := g.rng.Float64() * 300
	for i := 0; i < 1+g.rng.IntN(4); i++ {
		g.purchase(a, g.at(day), cities[g.rng.IntN(len(cities))])
		day += 2 + g.rng.Float64()*20
	}
	// Rings of cheap accounts are driven by a human farm as often as by
	// scripts: many react like people.
	if g.rng.Float64() < 0.5 {
		g.reactions(a, 3+g.rng.IntN(5), 700, 0.4)
	} else {
		g.reactions(a, g.rng.IntN(4), 30000, 0.8)
	}
}

func (g *generator) reseller(a *Account) {
	a.FriendCount = int64(g.lognormal(90, 0.9))
	a.Watched = g.rng.Float64() < g.cfg.WatchedShare
	day := g.rng.Float64() * 30
	for d := 0; d < 4+g.rng.IntN(6); d++ {
		for i := 0; i < 4+g.rng.IntN(8); i++ {
			g.purchase(a, g.at(day+float64(i)/100), cities[g.rng.IntN(len(cities))])
		}
		day += 5 + g.rng.Float64()*30
	}
	g.reactions(a, 2+g.rng.IntN(6), 20000, 0.9)
}
