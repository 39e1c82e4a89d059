package envelope

// Limits bound the work Parse does on hostile input. Input over a limit is
// rejected with ErrLimit before any unbounded work is done. The zero value of a
// field means its default.
type Limits struct {
	// MaxBytes is the largest input accepted (default 10 MiB, the gateway's
	// default http.maxBodyBytes).
	MaxBytes int
	// MaxDepth is the deepest nesting of objects and arrays (default 64).
	MaxDepth int
	// MaxStringBytes is the longest JSON string, in encoded bytes (default
	// 4 MiB: FHIR strings stop at 1 MB but inline base64Binary attachments run
	// larger).
	MaxStringBytes int
	// MaxArrayItems is the longest array, Bundle.entry included (default
	// 100,000).
	MaxArrayItems int
	// MaxFieldBytes is the longest envelope value the gateway keeps (ids, URLs,
	// codes; default 4096). Identities are further bounded to 255 bytes, the
	// size of an AMQP message_id.
	MaxFieldBytes int
}

// Default limits; see Limits for what each bounds.
const (
	DefaultMaxBytes       = 10 << 20
	DefaultMaxDepth       = 64
	DefaultMaxStringBytes = 4 << 20
	DefaultMaxArrayItems  = 100_000
	DefaultMaxFieldBytes  = 4096
	// MaxIdentityBytes bounds a message identity (an AMQP shortstr).
	MaxIdentityBytes = 255
)

func (l Limits) withDefaults() Limits {
	if l.MaxBytes <= 0 {
		l.MaxBytes = DefaultMaxBytes
	}
	if l.MaxDepth <= 0 {
		l.MaxDepth = DefaultMaxDepth
	}
	if l.MaxStringBytes <= 0 {
		l.MaxStringBytes = DefaultMaxStringBytes
	}
	if l.MaxArrayItems <= 0 {
		l.MaxArrayItems = DefaultMaxArrayItems
	}
	if l.MaxFieldBytes <= 0 {
		l.MaxFieldBytes = DefaultMaxFieldBytes
	}
	return l
}
