package events

// NumTypes is how many types Types lists.
const NumTypes = 10

// Index returns t's position in Types, or -1 for an unknown type. Counters
// indexed by it (an array of NumTypes) cost no map look-up or hashing per event.
func (t Type) Index() int {
	switch t {
	case TypeListen:
		return 0
	case TypePageView:
		return 1
	case TypeSocialPost:
		return 2
	case TypePhotoTag:
		return 3
	case TypeFollow:
		return 4
	case TypeTicketPurchase:
		return 5
	case TypeMerchPurchase:
		return 6
	case TypeDonation:
		return 7
	case TypeAttendance:
		return 8
	case TypeSocialGraph:
		return 9
	}
	return -1
}
